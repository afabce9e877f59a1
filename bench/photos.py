"""Photo-like test images made with Pillow: smooth gradients, shapes and grain, which JPEG compresses as it does photos."""
from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw, ImageFilter


def photo_jpeg(width: int = 1600, height: int = 1200, seed: int = 0, quality: int = 92) -> bytes:
    """A landscape-like picture: sky and ground gradients, blurred blobs, sensor-like noise."""
    sky = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (sky.point(lambda v: 40 + v // 3), sky.point(lambda v: 90 + v // 3),
                                sky.point(lambda v: 255 - v // 2)))
    draw = ImageDraw.Draw(image)
    for i in range(24):
        x, y = (seed * 97 + i * 211) % width, (seed * 53 + i * 137) % height
        radius = 40 + (i * 37) % 160
        draw.ellipse((x - radius, y - radius, x + radius, y + radius),
                     fill=((i * 53 + seed) % 256, (i * 91) % 256, (i * 29 + 80) % 256))
    image = image.filter(ImageFilter.GaussianBlur(12))
    grain = Image.effect_noise((width, height), 28).convert("RGB")
    image = Image.blend(image, grain, 0.12)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo_album_html(count: int = 6) -> str:
    """An inline template of `count` full-width photos (data: URIs), two per A4 page."""
    figures = []
    for seed in range(count):
        encoded = base64.b64encode(photo_jpeg(seed=seed)).decode()
        figures.append(f'<figure><img src="data:image/jpeg;base64,{encoded}" alt="Photo {seed + 1}" '
                       f'style="width: 100%"><figcaption>Photo {seed + 1}</figcaption></figure>')
    return f'<html lang="en"><head><title>Album</title></head><body>{"".join(figures)}</body></html>'
