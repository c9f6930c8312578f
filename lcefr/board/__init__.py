"""The device side: boards reached over SSH.

:mod:`~lcefr.board.ssh` (transport), :mod:`~lcefr.board.facts` (one BoardFacts and the probes that
fill it), :mod:`~lcefr.board.setup` (jetson-setup plan and its execution), :mod:`~lcefr.board.lce`
(remote LCE benchmark and reports), :mod:`~lcefr.board.trt` (remote TensorRT benchmark) and
:mod:`~lcefr.board.runner` (the standard-library runner copied to boards). Imports without TensorFlow.
"""
