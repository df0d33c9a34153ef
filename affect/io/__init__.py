"""Media I/O, a foundation layer (imports only ``affect.errors``): every image, video and audio
stream ``affect`` reads or writes goes through here.

- :mod:`affect.io.image`: the image reader (any Pillow mode, EXIF orientation, reduced decode, pixel cap);
- :mod:`affect.io.decode`: the PyAV reader (video frames with times and display rotation, audio);
- :mod:`affect.io.encode`: the PyAV encoder;
- :mod:`affect.io.suffixes`: the one list of image and video suffixes;
- :mod:`affect.io.errors`: :class:`MediaReadError` (with a counted ``status``).
"""

from affect.io.decode import MAX_FRAME_PIXELS, AudioReader, VideoReader, frame_times, iter_frames, read_audio
from affect.io.encode import VideoWriter, write_video
from affect.io.errors import MEDIA_STATUSES, MediaReadError
from affect.io.image import MAX_IMAGE_PIXELS, DecodedImage, decode_image, open_image, read_image, to_rgb8
from affect.io.suffixes import FRAME_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image, is_video

__all__ = [
    "FRAME_SUFFIXES", "IMAGE_SUFFIXES", "MAX_FRAME_PIXELS", "MAX_IMAGE_PIXELS", "MEDIA_STATUSES",
    "VIDEO_SUFFIXES", "AudioReader", "DecodedImage", "MediaReadError", "VideoReader", "VideoWriter", "decode_image",
    "frame_times", "is_image", "is_video", "iter_frames", "open_image", "read_audio", "read_image",
    "to_rgb8", "write_video",
]
