"""Render the seven emotion emoji from Noto Color Emoji into the display's asset folder, once.

Needs the Debian package ``fonts-noto-color-emoji`` (a CBDT bitmap font: Pillow renders it only
at its one strike size, 109, with ``embedded_color=True``) and Pillow. The output PNGs and a
LICENSE are committed, so the display never needs the font at run time.

    .venv/bin/python scripts/make_emoji_assets.py [--out stages/assets/emoji]
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw, ImageFont
from pydantic import Field
from pydantic_settings import SettingsConfigDict

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.labels import EMOTIONS  # noqa: E402  (needs the repo root on sys.path)
from shared.settings import CommandSettings, load_settings  # noqa: E402

FONT_PATH: Final = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEBIAN_PACKAGE: Final = "fonts-noto-color-emoji"
DEBIAN_COPYRIGHT: Final = Path("/usr/share/doc/fonts-noto-color-emoji/copyright")
APACHE_LICENSE: Final = Path("/usr/share/common-licenses/Apache-2.0")
DEFAULT_OUT: Final = ROOT / "stages" / "assets" / "emoji"

#: The only size the CBDT strike in NotoColorEmoji.ttf has; other sizes raise in Pillow.
STRIKE_SIZE: Final = 109
OUTPUT_SIZE: Final = 128

EMOJI: Final[dict[str, str]] = {
    "angry": "\U0001f620",  # ANGRY FACE
    "disgust": "\U0001f922",  # NAUSEATED FACE
    "fear": "\U0001f628",  # FEARFUL FACE
    "happy": "\U0001f604",  # SMILING FACE WITH OPEN MOUTH AND SMILING EYES
    "sad": "\U0001f622",  # CRYING FACE
    "surprise": "\U0001f62e",  # FACE WITH OPEN MOUTH
    "neutral": "\U0001f610",  # NEUTRAL FACE
}


def render_emoji_rgba(font: ImageFont.FreeTypeFont, char: str, size: int) -> Image.Image:
    """One emoji as a square RGBA image of ``size`` pixels, centred, transparent around it."""
    canvas = Image.new("RGBA", (STRIKE_SIZE * 2, STRIKE_SIZE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, 0), char, font=font, embedded_color=True)
    bbox = canvas.getbbox()
    if bbox is None:
        raise RuntimeError(f"the font drew nothing for U+{ord(char):04X}")
    glyph = canvas.crop(bbox)
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return square.resize((size, size), Image.Resampling.LANCZOS)


def package_version(package: str) -> str:
    """The installed Debian version of ``package``, or 'unknown' without dpkg."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def license_text(version: str) -> str:
    """What the LICENSE beside the PNGs says: where they come from and under which terms."""
    lines = [
        "Emoji images in this folder",
        "===========================",
        "",
        "Source:   Noto Emoji by Google, https://github.com/googlefonts/noto-emoji",
        f"Package:  Debian {DEBIAN_PACKAGE} {version} ({FONT_PATH})",
        "Made by:  scripts/make_emoji_assets.py (rendered with Pillow at the font's",
        f"          {STRIKE_SIZE} px strike, cropped, centred, resized to {OUTPUT_SIZE} px RGBA).",
        "",
        "Files:",
    ]
    for emotion in EMOTIONS:
        char = EMOJI[emotion]
        lines.append(f"  {emotion}.png  U+{ord(char):04X} {char}")
    lines += [
        "",
        "Licences: the emoji images are under the Apache License, Version 2.0",
        "(https://www.apache.org/licenses/LICENSE-2.0, full text below); the Noto Color Emoji",
        "font is under the SIL Open Font License, Version 1.1 (https://openfontlicense.org/,",
        "full text in the Debian copyright file below). Copyright 2013-2017 Google Inc.",
        "",
    ]
    if DEBIAN_COPYRIGHT.is_file():
        lines += [
            f"----- {DEBIAN_COPYRIGHT} -----",
            DEBIAN_COPYRIGHT.read_text(encoding="utf-8").rstrip(),
            "",
        ]
    if APACHE_LICENSE.is_file():
        lines += [
            f"----- {APACHE_LICENSE} -----",
            APACHE_LICENSE.read_text(encoding="utf-8").rstrip(),
            "",
        ]
    return "\n".join(lines)


class EmojiSettings(CommandSettings):
    """Render the seven emotion emoji from Noto Color Emoji into the display's asset folder."""

    model_config = SettingsConfigDict(cli_prog_name="python scripts/make_emoji_assets.py")

    out: Path = Field(default=DEFAULT_OUT, description="Output folder.")
    size: int = Field(default=OUTPUT_SIZE, ge=8, description="Side in pixels.")


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(EmojiSettings, argv)
    if not FONT_PATH.is_file():
        print(
            f"make_emoji_assets: {FONT_PATH} not found; run: apt-get install -y {DEBIAN_PACKAGE}",
            file=sys.stderr,
        )
        return 2
    font = ImageFont.truetype(str(FONT_PATH), size=STRIKE_SIZE)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for emotion in EMOTIONS:
        image = render_emoji_rgba(font, EMOJI[emotion], int(args.size))
        image.save(out / f"{emotion}.png", optimize=True)
        print(f"wrote {out / f'{emotion}.png'} {image.size} {image.mode}")
    (out / "LICENSE").write_text(license_text(package_version(DEBIAN_PACKAGE)), encoding="utf-8")
    print(f"wrote {out / 'LICENSE'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
