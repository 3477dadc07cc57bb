"""Shared material of the video tests: a long video made once per test session (vtest.avi
remuxed end to end five times: 3,975 frames of real MPEG-4, 40 MB), and PyAV's own frames
as the reference.  Test modules import the fixture by name."""
from __future__ import annotations

import av
import numpy as np
import pytest

from engine.video_stream.synthetic import concatenate
from tests.conftest import data_file

LONG_COPIES = 5


@pytest.fixture(scope="session")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / f"vtest_x{LONG_COPIES}.avi"
    concatenate(str(data_file("vtest.avi")), str(path), LONG_COPIES)
    return path


def pyav_frames(path, width=None, height=None, *, start=0, stop=None):
    """Frames ``start``..``stop`` as PyAV decodes the whole file from its start, RGB (resized with AREA)."""
    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if stop is not None and index >= stop:
                break
            if index < start:
                continue
            if width is not None:
                frame = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
            frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)
