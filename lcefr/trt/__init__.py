"""The NVIDIA side of lcefr: TensorRT engines (:mod:`.engine`), the single-layer TensorRT
microbenchmark run on a board (:mod:`.microbench`) and the one-command GPU check of the CUDA
kernels (:mod:`.gpu_check`).

Nothing is imported here: ``python3 -m lcefr.trt.gpu_check`` must run on a GPU machine that has
numpy and PyTorch but no TensorFlow.
"""
