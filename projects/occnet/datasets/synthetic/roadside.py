"""Static structures beside the synthetic road, in the global frame: raised sidewalks with curbs,
street lights, sign poles, street trees and furniture on the sidewalks; buildings, lot walls and
sheds, trees and bushes in the zones beyond (layout.ZONES).

All of them are labelled `background` and keep their finer kind (layout.BACKGROUND_KINDS): the
sidewalk boxes are `sidewalk`, trees and bushes `vegetation`, everything built `manmade`.
"""
import numpy as np

from occnet.datasets.synthetic.layout import (KIND, PARKING_OUTER, SIDEWALK_HEIGHT,
                                              SIDEWALK_OUTER, SURFACE, ZONE, stands_level,
                                              support_height)
from occnet.datasets.synthetic.parts import MATERIAL, concat_parts, make_parts, rectangles_overlap
from occnet.datasets.synthetic.shapes import METAL, PAINTS, SURFACE_COLOURS, paint
from occnet.descriptions import OPENSCENE

BACKGROUND = OPENSCENE.class_names.index('background')
SIDEWALK_SEGMENT = 10.0  # metres along s per sidewalk box
SIDEWALK_BOTTOM = -0.5  # metres; the sidewalk box reaches down to the bottom of the ground layer
CURB_COLOUR = SURFACE_COLOURS[SURFACE['curb']].astype(np.uint8)
BARK = (92, 70, 50)
FOLIAGE = ('green', 'green', 'dark_green', 'olive')
_FOLIAGE_PAINT = {'green': (58, 118, 52), 'dark_green': (36, 84, 44), 'olive': (104, 116, 50)}
BUILDING_PAINTS = ('concrete', 'beige', 'white', 'brick', 'grey', 'dark')
STREET_LIGHT_SPACING = (25.0, 35.0)
STREET_TREE_SPACING = (8.0, 14.0)
FURNITURE_SPACING = (10.0, 24.0)
SIGN_POLE_SPACING = (45.0, 90.0)
GREEN_TREE_AREA = 110.0  # square metres of green zone per tree
GREEN_BUSH_AREA = 140.0
GREEN_DEPTH = (16.5, 42.0)  # |d| range of trees and bushes in green zones


class _Builder:
    """Collects structure parts (global frame) and their footprints on the ground."""

    def __init__(self, layout):
        self.layout = layout
        self.parts = []
        self.footprints = []  # (cx, cy, yaw, half_l, half_w)

    def free(self, x, y, yaw, length, width):
        """Whether a footprint centred at global (x, y) overlaps none accepted so far."""
        if not self.footprints:
            return True
        fp = np.asarray(self.footprints)
        return not rectangles_overlap(np.array([x, y]), yaw, np.array([length, width]) / 2,
                                      fp[:, :2], fp[:, 2], fp[:, 3:5]).any()

    def add(self, x, y, yaw, boxes, kind, colours, materials, footprint=None):
        """Boxes given as (cx, cy, z0, l, w, h) in the structure's frame, z0 above its base;
        the base is the ground at (x, y). footprint: (l, w) reserved on the ground, or None."""
        s, d = self.layout.road_coordinates(np.array([[x, y]]))
        base = float(support_height(self.layout, s, d)[0])
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
        cos, sin = np.cos(yaw), np.sin(yaw)
        out = np.column_stack([
            x + cos * boxes[:, 0] - sin * boxes[:, 1], y + sin * boxes[:, 0] + cos * boxes[:, 1],
            base + boxes[:, 2] + boxes[:, 5] / 2, boxes[:, 3:6], np.full(len(boxes), yaw)])
        self.parts.append(make_parts(out, BACKGROUND, KIND[kind], -1, colours, materials))
        if footprint is not None:
            self.footprints.append((x, y, yaw, footprint[0] / 2, footprint[1] / 2))


def _sidewalks(builder, side, s_lo, s_hi):
    layout = builder.layout
    centre_d = side * (PARKING_OUTER + SIDEWALK_OUTER) / 2
    width = SIDEWALK_OUTER - PARKING_OUTER
    starts = np.arange(s_lo, s_hi, SIDEWALK_SEGMENT)
    boxes = np.column_stack([
        layout.origin[0] + starts + SIDEWALK_SEGMENT / 2,
        np.full(len(starts), layout.origin[1] + centre_d),
        np.full(len(starts), (SIDEWALK_HEIGHT + SIDEWALK_BOTTOM) / 2),
        np.full(len(starts), SIDEWALK_SEGMENT), np.full(len(starts), width),
        np.full(len(starts), SIDEWALK_HEIGHT - SIDEWALK_BOTTOM), np.zeros(len(starts))])
    builder.parts.append(make_parts(boxes, BACKGROUND, KIND['sidewalk'], -1, CURB_COLOUR,
                                    MATERIAL['paving']))


def _along(rng, s_lo, s_hi, spacing):
    """Positions along s from s_lo to s_hi with gaps drawn from `spacing` (min, max)."""
    positions = [s_lo + rng.uniform(0, spacing[1])]
    while positions[-1] < s_hi:
        positions.append(positions[-1] + rng.uniform(*spacing))
    return positions[:-1]


def _tree(builder, rng, x, y):
    """A tree at global (x, y) if its crown stays clear of everything standing so far."""
    yaw = rng.uniform(-np.pi, np.pi)
    trunk = rng.uniform(2.4, 3.2)  # crowns clear the tallest van (2.3 m)
    width, height = rng.uniform(2.4, 4.0), rng.uniform(2.5, 4.2)
    leaves = np.array(_FOLIAGE_PAINT[str(rng.choice(FOLIAGE))]) * rng.uniform(0.85, 1.1)
    leaves = np.clip(leaves, 0, 255).astype(np.uint8)
    if not builder.free(x, y, yaw, width, width):
        return
    boxes = [(0, 0, 0, 0.3, 0.3, trunk + 0.3),
             (0, 0, trunk, 0.75 * width, 0.75 * width, 0.3 * height),
             (0, 0, trunk + 0.3 * height, width, width, 0.45 * height),
             (0, 0, trunk + 0.75 * height, 0.55 * width, 0.55 * width, 0.25 * height)]
    builder.add(x, y, yaw, boxes, 'vegetation', [BARK, leaves, leaves, leaves],
                [MATERIAL['plain']] + [MATERIAL['foliage']] * 3, footprint=(0.3, 0.3))


def _street_light(builder, rng, x, y, side):
    height = rng.uniform(6.0, 8.0)
    arm = rng.uniform(1.5, 2.5)
    colour = np.array(PAINTS[str(rng.choice(('dark', 'grey')))], np.uint8)
    boxes = [(0, 0, 0, 0.2, 0.2, height),
             (0, -side * arm / 2, height - 0.15, 0.15, arm, 0.15),
             (0, -side * arm, height - 0.3, 0.5, 0.3, 0.2)]
    builder.add(x, y, 0.0, boxes, 'manmade', colour, MATERIAL['plain'], footprint=(0.2, 0.2))


def _sign_pole(builder, rng, x, y):
    height, plate = rng.uniform(2.2, 2.8), rng.uniform(0.5, 0.75)
    face = paint(rng, str(rng.choice(('blue', 'white', 'red', 'yellow'))))
    boxes = [(0, 0, 0, 0.08, 0.08, height), (0, 0, height, 0.05, plate, plate)]
    builder.add(x, y, rng.uniform(-0.2, 0.2), boxes, 'manmade', [METAL, face],
                [MATERIAL['plain'], MATERIAL['plain']], footprint=(0.1, 0.1))


def _furniture(builder, rng, x, y):
    kind = str(rng.choice(('bench', 'bin', 'hydrant', 'bollard')))
    yaw = rng.choice([0.0, np.pi / 2]) + rng.uniform(-0.05, 0.05)
    if kind == 'bench':
        colour = paint(rng, str(rng.choice(('brown', 'green', 'grey'))))
        boxes = [(0, 0, 0.0, 1.6, 0.5, 0.45), (0, 0.21, 0.45, 1.6, 0.08, 0.45)]
        size = (1.6, 0.5)
    elif kind == 'bin':
        colour = paint(rng, str(rng.choice(('green', 'grey', 'black'))))
        boxes, size = [(0, 0, 0, 0.5, 0.5, 1.0)], (0.5, 0.5)
    elif kind == 'hydrant':
        colour = paint(rng, str(rng.choice(('red', 'yellow'))))
        boxes, size = [(0, 0, 0, 0.3, 0.3, 0.55), (0, 0, 0.55, 0.18, 0.18, 0.15)], (0.3, 0.3)
    else:
        colour = paint(rng, str(rng.choice(('grey', 'black'))))
        boxes, size = [(0, 0, 0, 0.2, 0.2, 0.9)], (0.2, 0.2)
    if builder.free(x, y, yaw, *size) and stands_level(builder.layout, x, y, yaw, *size):
        builder.add(x, y, yaw, boxes, 'manmade', colour, MATERIAL['plain'], footprint=size)


def _sidewalk_fittings(builder, rng, side, s_lo, s_hi):
    """Street lights and sign poles near the curb, trees and furniture on the sidewalk."""
    ox, oy = builder.layout.origin
    for s in _along(rng, s_lo, s_hi, STREET_LIGHT_SPACING):
        _street_light(builder, rng, ox + s, oy + side * 11.3, side)
    for s in _along(rng, s_lo, s_hi, SIGN_POLE_SPACING):
        if builder.free(ox + s, oy + side * 11.35, 0.0, 0.6, 0.6):
            _sign_pole(builder, rng, ox + s, oy + side * 11.35)
    for s in _along(rng, s_lo, s_hi, STREET_TREE_SPACING):
        if rng.random() < 0.6:
            _tree(builder, rng, ox + s, oy + side * 14.25)
    for s in _along(rng, s_lo, s_hi, FURNITURE_SPACING):
        d = rng.uniform(11.3, 11.6) if rng.random() < 0.6 else rng.uniform(14.35, 14.6)
        _furniture(builder, rng, ox + s, oy + side * d)


def _building_zone(builder, rng, side, start, end):
    ox, oy = builder.layout.origin
    s = start + rng.uniform(0.0, 3.0)
    while s < end - 6.0:
        width = min(rng.uniform(8.0, 25.0), end - s - 0.5)
        front = SIDEWALK_OUTER + rng.uniform(0.3, 2.5)
        depth, height = rng.uniform(10.0, 20.0), rng.uniform(4.0, 16.0)
        colour = paint(rng, str(rng.choice(BUILDING_PAINTS)))
        x, y = ox + s + width / 2, oy + side * (front + depth / 2)
        builder.add(x, y, 0.0, [(0, 0, 0, width, depth, height)], 'manmade', colour,
                    MATERIAL['facade'], footprint=(width, depth))
        s += width + rng.uniform(0.5, 4.0)


def _lot_zone(builder, rng, side, start, end):
    ox, oy = builder.layout.origin
    if rng.random() < 0.6:
        gap_start = rng.uniform(start + 2.0, max(end - 9.0, start + 2.5))
        gap_end = gap_start + rng.uniform(4.0, 7.0)
        height = rng.uniform(0.9, 2.0)
        colour = paint(rng, str(rng.choice(('brick', 'concrete', 'white', 'dark'))))
        for lo, hi in ((start + 0.5, gap_start), (gap_end, end - 0.5)):
            if hi - lo > 1.0:
                x, y = ox + (lo + hi) / 2, oy + side * (SIDEWALK_OUTER + 0.3)
                builder.add(x, y, 0.0, [(0, 0, 0, hi - lo, 0.25, height)], 'manmade', colour,
                            MATERIAL['plain'], footprint=(hi - lo, 0.25))
    if rng.random() < 0.4:
        length, width = rng.uniform(3.0, 5.0), rng.uniform(3.0, 4.0)
        x = ox + rng.uniform(start + 3.0, max(end - 3.0, start + 3.5))
        y = oy + side * rng.uniform(32.0, 38.0)
        colour = paint(rng, str(rng.choice(BUILDING_PAINTS)))
        builder.add(x, y, 0.0, [(0, 0, 0, length, width, rng.uniform(2.4, 3.2))], 'manmade',
                    colour, MATERIAL['facade'], footprint=(length, width))


def _green_zone(builder, rng, side, start, end):
    ox, oy = builder.layout.origin
    area = (end - start) * (GREEN_DEPTH[1] - GREEN_DEPTH[0])
    for _ in range(rng.poisson(area / GREEN_TREE_AREA)):
        _tree(builder, rng, ox + rng.uniform(start, end), oy + side * rng.uniform(*GREEN_DEPTH))
    for _ in range(rng.poisson(area / GREEN_BUSH_AREA)):
        x, y = ox + rng.uniform(start, end), oy + side * rng.uniform(*GREEN_DEPTH)
        length, width, yaw = rng.uniform(1.0, 3.0), rng.uniform(0.8, 1.5), rng.uniform(0, np.pi)
        if builder.free(x, y, yaw, length, width):
            leaves = np.clip(np.array(_FOLIAGE_PAINT[str(rng.choice(FOLIAGE))])
                             * rng.uniform(0.8, 1.1), 0, 255).astype(np.uint8)
            builder.add(x, y, yaw, [(0, 0, -0.1, length, width, rng.uniform(0.7, 1.4))],
                        'vegetation', leaves, MATERIAL['foliage'], footprint=(length, width))


_ZONE_BUILDERS = {ZONE['building']: _building_zone, ZONE['lot']: _lot_zone,
                  ZONE['green']: _green_zone}


def make_roadside(rng, layout, s_range):
    """Structures along both sides of the road over s_range = (s_min, s_max) metres.

    Returns:
        parts: Parts in the global frame (static: zero velocity).
        footprints: (M, 5) float64 cx, cy, yaw, half length, half width of every standing
            structure (sidewalks excluded), for placing objects clear of them.
    """
    builder = _Builder(layout)
    sides = list(enumerate((-1.0, 1.0)))

    def zones(kinds):
        for k, side in sides:
            edges = layout.zone_edges[k]
            for zone in np.flatnonzero(np.isin(layout.zone_kind[k], kinds)):
                start, end = max(edges[zone], s_range[0]), min(edges[zone + 1], s_range[1])
                if end - start > 4.0:
                    yield int(layout.zone_kind[k][zone]), side, start, end

    # buildings, walls and sheds first: trees then keep their crowns clear of them
    for kind, side, start, end in zones([ZONE['building'], ZONE['lot']]):
        _ZONE_BUILDERS[kind](builder, rng, side, start, end)
    for _, side in sides:
        _sidewalks(builder, side, s_range[0], s_range[1])
        _sidewalk_fittings(builder, rng, side, s_range[0], s_range[1])
    for kind, side, start, end in zones([ZONE['green']]):
        _ZONE_BUILDERS[kind](builder, rng, side, start, end)
    footprints = np.asarray(builder.footprints, dtype=np.float64).reshape(-1, 5)
    return concat_parts(builder.parts), footprints
