"""Conversion through a kept libswscale context, and decoding at reduced resolution (FFmpeg's
``lowres``) for the cascade's small frames, checked against PyAV on the real clips."""
from __future__ import annotations

import threading

import av
import numpy as np
import pytest

from engine.cascades.small_frames import _decoded_small, lowres_for
from engine.video_stream.decoder import to_rgb
from engine.video_stream.reading import stream_reader
from tests.conftest import data_file


def decoded(clip: str, limit: int, lowres: int = 0) -> list:
    """The first ``limit`` pictures PyAV decodes from the clip's file."""
    with av.open(str(data_file(clip))) as container:
        stream = container.streams.video[0]
        if lowres:
            stream.codec_context.options = {"lowres": str(lowres)}
        pictures = []
        for picture in container.decode(stream):
            pictures.append(picture)
            if len(pictures) == limit:
                return pictures
    return pictures


def pyav_rgb(picture, width: int, height: int) -> np.ndarray:
    """PyAV's own conversion, a new context each call (what to_rgb must equal)."""
    if (picture.width, picture.height) == (width, height):
        return picture.to_ndarray(format="rgb24")
    return picture.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()


def stream_id(con, table: str) -> int:
    return con.execute("SELECT stream_id FROM mallard.videos WHERE table_name = ?", [table]).fetchone()[0]


@pytest.mark.parametrize("clip", ["vtest.avi", "bikes.mp4"])
def test_a_kept_context_converts_exactly_as_pyav_when_sizes_alternate(clip):
    pictures = decoded(clip, 24)
    sizes = [(pictures[0].width, pictures[0].height), (224, 224), (64, 64), (100, 60)]
    for position, picture in enumerate(pictures):
        width, height = sizes[position % len(sizes)]
        out = np.empty((height, width, 3), np.uint8)
        to_rgb(picture, width, height, out)
        assert np.array_equal(out, pyav_rgb(picture, width, height)), (position, width, height)


def test_threads_convert_with_contexts_of_their_own():
    pictures = decoded("vtest.avi", 40)
    expected = [pyav_rgb(p, 224, 224) if i % 2 else pyav_rgb(p, 64, 64) for i, p in enumerate(pictures)]
    mismatches: list[tuple[int, int]] = []

    def work(offset: int) -> None:
        for _ in range(3):
            for i, picture in enumerate(pictures):
                side = 224 if i % 2 else 64
                out = np.empty((side, side, 3), np.uint8)
                to_rgb(picture, side, side, out)
                if not np.array_equal(out, expected[i]):
                    mismatches.append((offset, i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_lowres_is_the_largest_reduction_keeping_twice_the_side():
    assert lowres_for(768, 576, 64) == 2          # 192x144: 144 >= 128, 72 < 128
    assert lowres_for(176, 144, 64) == 0          # carphone: already small
    assert lowres_for(1920, 1080, 64) == 3        # at most FFmpeg's 3
    assert lowres_for(768, 576, 224) == 0


def test_a_stored_mpeg4_stream_decodes_at_lowres_and_a_decoder_is_never_reused_across_levels(con):
    con.execute(f"LOAD VIDEO '{data_file('vtest.avi')}' INTO traffic")
    reader = stream_reader(con.session)
    sid = stream_id(con, "traffic")
    ids = np.arange(0, 30, 3)
    small = [(p.width, p.height) for _, p in reader.decode(con.session, sid, ids, lowres=2)]
    full = [(p.width, p.height) for _, p in reader.decode(con.session, sid, ids)]
    again = [(p.width, p.height) for _, p in reader.decode(con.session, sid, ids, lowres=2)]
    assert small == again == [(192, 144)] * len(ids)
    assert full == [(768, 576)] * len(ids)


def test_h264_has_no_lowres_and_decodes_at_full_size(con):
    con.execute(f"LOAD VIDEO '{data_file('bikes.mp4')}' INTO bikes")
    reader = stream_reader(con.session)
    sizes = {(p.width, p.height) for _, p in reader.decode(con.session, stream_id(con, "bikes"), np.arange(20),
                                                            lowres=2)}
    assert sizes == {(640, 272)}


def small(con, ids: np.ndarray) -> np.ndarray:
    """The cascade's 64x64 frames of ``ids`` from the frames table ``traffic``."""
    batches = list(_decoded_small(con.session, stream_id(con, "traffic"), ids, 64, 8, lambda stage, s: None))
    assert np.concatenate([frame_ids for frame_ids, _ in batches]).tolist() == ids.tolist()
    return np.concatenate([frames for _, frames in batches])


@pytest.mark.parametrize("size", [None, 224], ids=["native", "224x224"])
def test_the_cascades_small_frames_are_pyavs_full_pictures_shrunk_by_area_by_default(con, size):
    options = f" WITH (width = {size}, height = {size})" if size else ""
    con.execute(f"LOAD VIDEO '{data_file('vtest.avi')}' INTO traffic{options}")
    ids = np.arange(0, 60, 2)
    expected = np.stack([pyav_rgb(p, 64, 64) for p in decoded("vtest.avi", 60)[::2]])
    assert np.array_equal(small(con, ids), expected)


@pytest.mark.parametrize("size", [None, 224], ids=["native", "224x224"])
def test_with_inference_cascade_lowres_the_small_frames_are_pyavs_lowres_pictures(con, size):
    """Whatever size the table's frames are scaled to, the small frames come from the stream's
    pictures decoded at lowres (768x576 -> 192x144), shrunk straight to 64x64."""
    options = f" WITH (width = {size}, height = {size})" if size else ""
    con.execute(f"LOAD VIDEO '{data_file('vtest.avi')}' INTO traffic{options}")
    con.execute("SET inference_cascade_lowres = true")
    ids = np.arange(0, 60, 2)
    timings: dict[str, float] = {}
    batches = list(_decoded_small(con.session, stream_id(con, "traffic"), ids, 64, 8,
                                  lambda stage, s: timings.__setitem__(stage, timings.get(stage, 0.0) + s)))
    got = np.concatenate([frames for _, frames in batches])
    assert np.concatenate([frame_ids for frame_ids, _ in batches]).tolist() == ids.tolist()
    expected = np.stack([pyav_rgb(p, 64, 64) for p in decoded("vtest.avi", 60, lowres=2)[::2]])
    assert got.shape == (len(ids), 64, 64, 3)
    assert np.array_equal(got, expected)
    assert set(timings) == {"decode", "convert"}
    # not the full-size pictures shrunk: reduced decoding changes pixels (by a few levels on average)
    full = np.stack([pyav_rgb(p, 64, 64) for p in decoded("vtest.avi", 60)[::2]])
    assert not np.array_equal(got, full)
    assert np.abs(got.astype(int) - full.astype(int)).mean() < 5
