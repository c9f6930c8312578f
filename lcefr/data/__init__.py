"""Data: image folders, insightface RecordIO and ``.bin`` verification sets, generated faces, augmentation."""
from lcefr.data.binset import BinFormatError, VerificationSet, read_bin, write_bin
from lcefr.data.folder import ImageFolder, image_folder_dataset, scan_image_folder
from lcefr.data.images import list_images, load_faces, read_face
from lcefr.data.recordio import RecordIOError, RecordIOReader, recordio_dataset
from lcefr.data.synth import IdentityParams, render_face, synth_dataset, synth_faces, synth_identity

__all__ = [
    "BinFormatError", "VerificationSet", "read_bin", "write_bin",
    "ImageFolder", "image_folder_dataset", "scan_image_folder",
    "list_images", "load_faces", "read_face",
    "RecordIOError", "RecordIOReader", "recordio_dataset",
    "IdentityParams", "render_face", "synth_dataset", "synth_faces", "synth_identity",
]
