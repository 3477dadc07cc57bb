"""What a decoder needs besides the packets: the codec and its parameters, as stored.

The container's demuxer knows them (FFmpeg's ``AVCodecParameters``); LOAD VIDEO copies the
ones that change what a decoder outputs (the codec, its tag, its private data, the coded
size, the pixel format, the colour description, the sample aspect ratio, the time base) so
a decoder opened later from the database alone gives the same pixels as one opened by the
container.

>>> params = CodecParameters(codec="mpeg4", codec_tag="FMP4", extradata=None, width=64, height=48,
...                          pix_fmt="yuv420p", time_base=(1, 25))
>>> CodecParameters.from_row(params.to_row()) == params
True
>>> open_decoder(params).name
'mpeg4'
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

#: Colour fields copied from the stream to the decoder (FFmpeg's enum values).
COLOUR_FIELDS = ("color_range", "colorspace", "color_primaries", "color_trc")
#: FFmpeg decoders that honour ``lowres`` (their ``max_lowres`` is 3), by decoder name.
LOWRES_CODECS = frozenset({"mpeg1video", "mpeg2video", "mpeg4", "msmpeg4v1", "msmpeg4v2", "msmpeg4", "wmv1", "wmv2",
                           "h263", "h263i", "h263p", "flv", "mjpeg"})
MAX_LOWRES = 3


@dataclass(frozen=True)
class CodecParameters:
    """The decoder parameters of one stored video stream."""

    codec: str                          # FFmpeg decoder name, e.g. 'h264'
    codec_tag: str | None               # the container's four-character code ('avc1', 'div3')
    extradata: bytes | None             # codec private data (H.264's avcC, ...)
    width: int                          # coded size, as the container declares it
    height: int
    pix_fmt: str | None
    time_base: tuple[int, int]          # of the packets' pts and dts
    colour: dict[str, int] = field(default_factory=dict)
    sample_aspect_ratio: tuple[int, int] | None = None
    bits_per_coded_sample: int = 0

    @classmethod
    def from_stream(cls, stream: Any) -> CodecParameters:
        """The parameters of a PyAV video stream, as its container's demuxer set them."""
        context = stream.codec_context
        sar = context.sample_aspect_ratio
        tag = context.codec_tag
        return cls(
            codec=context.name,
            codec_tag=tag if tag and tag.isprintable() else None,
            extradata=bytes(context.extradata) if context.extradata else None,
            width=int(context.width), height=int(context.height),
            pix_fmt=context.pix_fmt,
            time_base=(stream.time_base.numerator, stream.time_base.denominator),
            colour={name: int(getattr(context, name)) for name in COLOUR_FIELDS},
            sample_aspect_ratio=(sar.numerator, sar.denominator) if sar else None,
            bits_per_coded_sample=int(context.bits_per_coded_sample or 0),
        )

    @property
    def fraction(self) -> Fraction:
        """The time base as a Fraction."""
        return Fraction(*self.time_base)

    def to_row(self) -> tuple[str, bytes | None, str]:
        """(codec, extradata, decoder JSON): how mallard.videos stores them."""
        rest = {k: v for k, v in asdict(self).items() if k not in ("codec", "extradata")}
        return self.codec, self.extradata, json.dumps(rest, sort_keys=True)

    @classmethod
    def from_row(cls, row: tuple[str, bytes | None, str]) -> CodecParameters:
        """The inverse of :meth:`to_row`."""
        codec, extradata, text = row
        rest = json.loads(text)
        sar = rest.pop("sample_aspect_ratio")
        return cls(codec=codec, extradata=bytes(extradata) if extradata is not None else None,
                   time_base=tuple(rest.pop("time_base")),
                   sample_aspect_ratio=tuple(sar) if sar else None, **rest)


def open_decoder(params: CodecParameters, *, threads: bool = True, export_mvs: bool = False,
                 lowres: int = 0) -> Any:
    """A PyAV decoder (CodecContext) set up from stored parameters.

    ``threads`` lets FFmpeg decode on several threads (as PyAV's ``thread_type = "AUTO"``);
    ``export_mvs`` makes it attach motion vectors to the frames it outputs; ``lowres`` (0-3)
    asks for pictures 2**lowres times smaller a side, decoded from the low frequencies of each
    block (FFmpeg's ``lowres``: MPEG-1/2/4, MS-MPEG-4, H.263, MJPEG; a decoder without it, such
    as H.264's, gives full-size pictures).
    """
    import av

    context: Any = av.CodecContext.create(params.codec, "r")  # a video decoder: width, height, pix_fmt...
    if params.extradata:
        context.extradata = params.extradata
    context.width, context.height = params.width, params.height
    if params.pix_fmt:
        context.pix_fmt = params.pix_fmt
    if params.codec_tag:
        context.codec_tag = params.codec_tag
    for name, value in params.colour.items():
        setattr(context, name, value)
    if params.sample_aspect_ratio:
        context.sample_aspect_ratio = Fraction(*params.sample_aspect_ratio)
    context.bits_per_coded_sample = params.bits_per_coded_sample
    if threads:
        context.thread_type = "AUTO"
    options = {}
    if export_mvs:
        options["flags2"] = "+export_mvs"
    if lowres and params.codec in LOWRES_CODECS:
        options["lowres"] = str(min(int(lowres), MAX_LOWRES))
    if options:
        context.options = options
    return context
