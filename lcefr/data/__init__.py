"""Data: image folders of aligned faces (readers for RecordIO and .bin come with the data issue)."""
from lcefr.data.images import IMAGE_EXTENSIONS, list_images, read_face, load_faces

__all__ = ["IMAGE_EXTENSIONS", "list_images", "read_face", "load_faces"]
