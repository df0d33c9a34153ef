"""Face preprocessing of paper Sec. IV: detection, 5-point similarity alignment, 96x96x3 crops."""

from affect.face.align import align_face, apply_transform, resize_crop, similarity_transform, to_rgb
from affect.face.detect import SELECT_MODES, Face, FaceDetector, select_faces
from affect.face.pipeline import (
    AlignedFace,
    CorruptInputError,
    crop_only,
    detect_and_align,
    faces_from_landmarks,
    is_video,
    iter_video_frames,
    load_image,
)
from affect.face.template import five_from_68, frontal_template

__all__ = [
    "SELECT_MODES", "AlignedFace", "CorruptInputError", "Face", "FaceDetector", "align_face",
    "apply_transform", "crop_only", "detect_and_align", "faces_from_landmarks", "five_from_68",
    "frontal_template", "is_video", "iter_video_frames", "load_image", "resize_crop",
    "select_faces", "similarity_transform", "to_rgb",
]
