"""What the synthetic world looks like: the objects' shapes as a few parts, the paints of
objects and structures, and the colours of the ground surfaces.

Colours do not give the class away: every class draws from a palette of paints that other classes
share (a red car beside a red barrier, a grey pedestrian beside a grey bin), with a per-object
jitter. Shapes do: cars have a lower body and a glass cabin, vans a tall body, trucks a cab and a
cargo box; pedestrians are tall and thin, bicycles low and long, cones tapered, barriers long and
low, construction signs a plate on a post.

A shape is a list of parts in the object's frame: (cx, cy, z0, l, w, h) metres, where (cx, cy) is
the part's centre relative to the object's centre, z0 its bottom above the object's base, plus an
RGB colour and a material (parts.MATERIALS).
"""
import colorsys

import numpy as np

from occnet.datasets.synthetic.layout import SURFACES
from occnet.datasets.synthetic.parts import MATERIAL

PAINTS = {
    'white': (226, 226, 222), 'black': (32, 32, 35), 'silver': (168, 171, 175),
    'grey': (112, 114, 118), 'red': (176, 32, 30), 'blue': (38, 66, 150),
    'navy': (32, 40, 82), 'green': (44, 112, 62), 'beige': (198, 184, 150),
    'orange': (238, 122, 24), 'yellow': (228, 198, 44), 'brown': (112, 76, 46),
    'concrete': (172, 170, 162), 'brick': (150, 72, 52), 'dark': (72, 72, 78),
}
GLASS = (48, 58, 70)
TYRE = (30, 30, 32)
METAL = (140, 142, 146)
SKIN = (196, 158, 128)

# RGB base colour and texture amplitude of each ground surface, in SURFACES order.
_SURFACE_STYLE = {
    'asphalt': ((88, 90, 94), 7.0),
    'lane_line': ((220, 220, 214), 5.0),
    'centre_line': ((222, 184, 60), 5.0),
    'bike_lane': ((108, 94, 92), 7.0),
    'parking': ((104, 104, 106), 7.0),
    'curb': ((176, 174, 168), 5.0),
    'sidewalk': ((160, 157, 150), 6.0),
    'plaza': ((150, 140, 128), 8.0),
    'lot': ((80, 82, 86), 8.0),
    'grass': ((92, 124, 62), 18.0),
    'crosswalk': ((225, 225, 220), 5.0),
}
SURFACE_COLOURS = np.array([_SURFACE_STYLE[name][0] for name in SURFACES], dtype=np.float32)
SURFACE_TEXTURE = np.array([_SURFACE_STYLE[name][1] for name in SURFACES], dtype=np.float32)

# Paints each class draws from (a name may repeat to weight it).
CLASS_PAINTS = {
    'vehicle': ('white', 'white', 'black', 'silver', 'grey', 'red', 'blue', 'navy', 'green',
                'beige'),
    'pedestrian': ('black', 'grey', 'navy', 'red', 'white', 'beige', 'blue', 'green', 'brown'),
    'bicycle': ('black', 'red', 'blue', 'silver', 'green', 'white', 'orange'),
    'traffic_cone': ('orange', 'orange', 'orange', 'red', 'yellow'),
    'barrier': ('red', 'white', 'orange', 'concrete', 'yellow', 'grey'),
    'czone_sign': ('orange', 'orange', 'yellow', 'white'),
    'generic_object': ('grey', 'brown', 'green', 'blue', 'black', 'concrete', 'beige', 'red'),
}
TROUSER_PAINTS = ('black', 'navy', 'grey', 'blue', 'beige', 'brown')

# Vehicle variants: (name, min (l, w, h), max (l, w, h)) metres.
VEHICLE_VARIANTS = {
    'car': ((4.0, 1.75, 1.4), (4.9, 1.95, 1.6)),
    'van': ((4.8, 1.9, 1.9), (5.6, 2.05, 2.3)),
    'truck': ((6.5, 2.3, 3.0), (8.5, 2.5, 3.6)),
}
# Variant mix per placement (parking lanes are too narrow for trucks).
VEHICLE_MIX = {'lane': {'car': 0.65, 'van': 0.2, 'truck': 0.15},
               'parking': {'car': 0.75, 'van': 0.25},
               'lot': {'car': 0.75, 'van': 0.25}}
CATEGORY_SIZES = {  # min and max overall (l, w, h) of the other classes
    'pedestrian': ((0.3, 0.45, 1.6), (0.4, 0.58, 1.9)),
    'bicycle': ((1.6, 0.5, 1.0), (1.85, 0.65, 1.15)),
    'traffic_cone': ((0.38, 0.38, 0.6), (0.48, 0.48, 0.85)),
    'barrier': ((1.8, 0.4, 0.8), (2.5, 0.6, 1.05)),
    'czone_sign': ((0.45, 0.6, 1.6), (0.55, 0.9, 2.1)),
    'generic_object': ((0.5, 0.4, 0.45), (1.2, 1.0, 1.2)),
}


def paint(rng, name):
    """RGB uint8 of a named paint with a per-object jitter of brightness and hue."""
    hue, sat, val = colorsys.rgb_to_hsv(*(np.asarray(PAINTS[name]) / 255.0))
    rgb = colorsys.hsv_to_rgb((hue + rng.uniform(-0.015, 0.015)) % 1.0, sat,
                              min(val * rng.uniform(0.85, 1.08), 1.0))
    return np.round(np.asarray(rgb) * 255).astype(np.uint8)


def _vehicle(rng, placement):
    mix = VEHICLE_MIX.get(placement, VEHICLE_MIX['lane'])
    variant = str(rng.choice(sorted(mix), p=[mix[k] for k in sorted(mix)]))
    length, w, h = rng.uniform(*VEHICLE_VARIANTS[variant])
    colour = paint(rng, str(rng.choice(CLASS_PAINTS['vehicle'])))
    plain, cabin = MATERIAL['plain'], MATERIAL['cabin']
    if variant == 'car':
        parts = [(0, 0, 0, length, w, 0.55 * h, colour, plain),
                 (-0.05 * length, 0, 0.55 * h, 0.5 * length, 0.88 * w, 0.45 * h, colour, cabin)]
    elif variant == 'van':
        parts = [(0, 0, 0, length, w, 0.5 * h, colour, plain),
                 (-0.06 * length, 0, 0.5 * h, 0.88 * length, 0.96 * w, 0.5 * h, colour, cabin)]
    else:
        cab = 2.0
        cargo = paint(rng, str(rng.choice(('white', 'silver', 'grey', 'red', 'blue'))))
        parts = [(length / 2 - cab / 2, 0, 0, cab, w, 0.75 * h, colour, cabin),
                 (-cab / 2 - 0.1, 0, 0.35, length - cab - 0.2, w, h - 0.35, cargo, plain)]
    return (length, w, h), parts


def _pedestrian(rng, size):
    depth, width, h = size
    shirt = paint(rng, str(rng.choice(CLASS_PAINTS['pedestrian'])))
    trousers = paint(rng, str(rng.choice(TROUSER_PAINTS)))
    plain = MATERIAL['plain']
    return [(0, 0, 0.47 * h, depth, width, 0.37 * h, shirt, plain),
            (0, 0, 0, 0.8 * depth, 0.7 * width, 0.47 * h, trousers, plain),
            (0, 0, 0.84 * h, 0.6 * depth, 0.4 * width, 0.16 * h, np.array(SKIN), plain)]


def _bicycle(rng, size):
    length, w, h = size
    frame = paint(rng, str(rng.choice(CLASS_PAINTS['bicycle'])))
    plain = MATERIAL['plain']
    return [(0, 0, 0.33, 0.6 * length, 0.08, h - 0.43, frame, plain),
            (0, 0, 0, length, 0.1, 0.66, np.array(TYRE), plain),  # both wheels
            (0.32 * length, 0, h - 0.1, 0.08, w, 0.1, np.array(TYRE), plain),  # handlebar
            (-0.2 * length, 0, h - 0.16, 0.26, 0.14, 0.08, np.array(TYRE), plain)]  # saddle


def _traffic_cone(rng, size):
    base, _, h = size
    colour = paint(rng, str(rng.choice(CLASS_PAINTS['traffic_cone'])))
    tier = (h - 0.05) / 3
    plain = MATERIAL['plain']
    white = paint(rng, 'white')
    return [(0, 0, 0, base, base, 0.05, colour, plain),
            (0, 0, 0.05, 0.7 * base, 0.7 * base, tier, colour, plain),
            (0, 0, 0.05 + tier, 0.5 * base, 0.5 * base, tier, white, plain),
            (0, 0, 0.05 + 2 * tier, 0.3 * base, 0.3 * base, tier, colour, plain)]


def _barrier(rng, size):
    length, w, h = size
    name = str(rng.choice(CLASS_PAINTS['barrier']))
    colour = paint(rng, name)
    material = MATERIAL['plain'] if name in ('concrete', 'grey') else MATERIAL['stripes']
    if rng.random() < 0.5:  # a concrete-style block, wider at the foot
        return [(0, 0, 0, length, w, 0.35 * h, colour, material),
                (0, 0, 0.35 * h, length, 0.55 * w, 0.65 * h, colour, material)]
    feet = np.array(TYRE)
    return [(0, 0, 0.15, length, 0.12, h - 0.15, colour, material),
            (-0.38 * length, 0, 0, 0.18, w, 0.15, feet, MATERIAL['plain']),
            (0.38 * length, 0, 0, 0.18, w, 0.15, feet, MATERIAL['plain'])]


def _czone_sign(rng, size):
    foot, width, h = size
    plate = rng.uniform(0.6, 0.85)
    colour = paint(rng, str(rng.choice(CLASS_PAINTS['czone_sign'])))
    return [(0, 0, h - plate, 0.05, width, plate, colour, MATERIAL['stripes']),
            (0, 0, 0.08, 0.08, 0.08, h - 0.08 - plate, np.array(METAL), MATERIAL['plain']),
            (0, 0, 0, foot, 0.45, 0.08, np.array(TYRE), MATERIAL['plain'])]


def _generic_object(rng, size):
    length, w, h = size
    colour = paint(rng, str(rng.choice(CLASS_PAINTS['generic_object'])))
    if rng.random() < 0.3 and h > 0.8:  # two stacked crates
        lower = 0.55 * h
        return [(0, 0, 0, length, w, lower, colour, MATERIAL['plain']),
                (0.05 * length, -0.05 * w, lower, 0.8 * length, 0.8 * w, h - lower,
                 paint(rng, str(rng.choice(CLASS_PAINTS['generic_object']))), MATERIAL['plain'])]
    return [(0, 0, 0, length, w, h, colour, MATERIAL['plain'])]


_BUILDERS = {'pedestrian': _pedestrian, 'bicycle': _bicycle, 'traffic_cone': _traffic_cone,
             'barrier': _barrier, 'czone_sign': _czone_sign, 'generic_object': _generic_object}


def make_shape(rng, category, placement):
    """Overall size (l, w, h) metres and parts of one object of a nuPlan category.

    Returns:
        size: (3,) float64.
        parts: list of (cx, cy, z0, l, w, h, rgb (3,) uint8, material); the first carries the
            paint the object drew from CLASS_PAINTS.
    """
    if category == 'vehicle':
        size, parts = _vehicle(rng, placement)
        return np.asarray(size, dtype=np.float64), parts
    size = rng.uniform(*CATEGORY_SIZES[category])
    if category == 'traffic_cone':
        size[1] = size[0]
    return size, _BUILDERS[category](rng, size)
