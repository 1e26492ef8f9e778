"""Where things are beside the synthetic road: the cross-section, the roadside zones, the ground's
height and the finer kind of every background surface.

Road coordinates: s = x - origin[0] along the road (the global x axis), d = y - origin[1] to the
left of the centre line, metres. The carriageway, bike lanes and parking lanes lie at z = 0; the
curb and sidewalk are raised by SIDEWALK_HEIGHT; beyond the sidewalk each side is cut along s
into zones: `building` (facades behind a paved strip), `lot` (flat paved parking) and `green`
(grass terrain that rises and falls by up to a voxel, with trees and bushes).
"""
from dataclasses import dataclass

import numpy as np

# Cross-section: outer edges of each band as |d| in metres (symmetric about the centre line).
LANE_WIDTH = 3.5
CARRIAGEWAY_HALF = 2 * LANE_WIDTH  # two lanes per direction
BIKE_LANE_OUTER = 8.6
PARKING_OUTER = 10.8  # the curb starts here
CURB_OUTER = 11.0
SIDEWALK_OUTER = 15.0
SIDEWALK_HEIGHT = 0.15  # metres above the road
CROSSWALK_SPACING = 150.0  # metres between zebra crossings along the road
CROSSWALK_WIDTH = 4.0
DASH_PERIOD, DASH_LENGTH = 9.0, 3.0  # dashed lane dividers
LINE_WIDTH = 0.15

ZONES = ('building', 'lot', 'green')
ZONE = {name: i for i, name in enumerate(ZONES)}
ZONE_WEIGHTS = (0.45, 0.25, 0.30)
ZONE_LENGTH = (25.0, 70.0)  # metres along s
TERRAIN_MAX_HEIGHT = (0.25, 0.45)  # metres, range of each green zone's peak height
TERRAIN_RAMP = 3.0  # metres over which the terrain rises from the zone's edges
TERRAIN_WAVELENGTH = (9.0, 20.0)  # metres

# Ground surface kinds returned by `surface_kind` (they choose the colour and lidar intensity).
SURFACES = ('asphalt', 'lane_line', 'centre_line', 'bike_lane', 'parking', 'curb', 'sidewalk',
            'plaza', 'lot', 'grass', 'crosswalk')
SURFACE = {name: i for i, name in enumerate(SURFACES)}
_ZONE_SURFACE = np.array([SURFACE['plaza'], SURFACE['lot'], SURFACE['grass']])

# The finer kind of every background voxel (all labelled `background` in OpenScene), named as
# Occ3D-nuScenes names its classes so that an Occ3D-style writer can split them.
BACKGROUND_KINDS = ('driveable_surface', 'sidewalk', 'terrain', 'manmade', 'vegetation')
KIND = {name: i for i, name in enumerate(BACKGROUND_KINDS)}
NO_KIND = -1  # objects (and free voxels) have no background kind
_ZONE_KIND = np.array([KIND['sidewalk'], KIND['driveable_surface'], KIND['terrain']])


@dataclass
class RoadLayout:
    """The road of one log and its two roadsides (side 0: d < 0, side 1: d > 0)."""
    origin: np.ndarray  # (2,) global metres of (s, d) = (0, 0)
    crosswalk_offset: float  # s of the first crosswalk centre
    zone_edges: list  # per side: (Z + 1,) increasing s boundaries of its zones
    zone_kind: list  # per side: (Z,) int index into ZONES
    terrain: np.ndarray  # (2, 6) per side: peak height, 2 wavelengths, 2 phases, wave angle

    def road_coordinates(self, global_xy):
        """(s, d) arrays of global points (..., 2)."""
        return global_xy[..., 0] - self.origin[0], global_xy[..., 1] - self.origin[1]


def make_layout(rng, origin, s_range):
    """Random zones along both roadsides over s_range = (s_min, s_max) metres."""
    edges, kinds = [], []
    for _ in range(2):
        side_edges = [s_range[0] - ZONE_LENGTH[1]]
        while side_edges[-1] < s_range[1] + ZONE_LENGTH[1]:
            side_edges.append(side_edges[-1] + rng.uniform(*ZONE_LENGTH))
        edges.append(np.array(side_edges))
        kinds.append(rng.choice(len(ZONES), size=len(side_edges) - 1, p=ZONE_WEIGHTS))
    terrain = np.stack([
        np.array([rng.uniform(*TERRAIN_MAX_HEIGHT), rng.uniform(*TERRAIN_WAVELENGTH),
                  rng.uniform(*TERRAIN_WAVELENGTH), rng.uniform(0, 2 * np.pi),
                  rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)]) for _ in range(2)])
    return RoadLayout(origin=np.asarray(origin, dtype=np.float64),
                      crosswalk_offset=float(rng.uniform(0, CROSSWALK_SPACING)),
                      zone_edges=edges, zone_kind=kinds, terrain=terrain)


def _zone_lookup(layout, s, d):
    """Side (0/1), zone kind and the zone's [start, end) in s of road points (arrays)."""
    side = (np.asarray(d) > 0).astype(np.int64)
    kind = np.empty(np.shape(s), dtype=np.int64)
    start = np.empty(np.shape(s))
    end = np.empty(np.shape(s))
    for k in range(2):
        here = side == k
        edges = layout.zone_edges[k]
        zone = np.clip(np.searchsorted(edges, s[here], side='right') - 1, 0, len(edges) - 2)
        kind[here] = layout.zone_kind[k][zone]
        start[here], end[here] = edges[zone], edges[zone + 1]
    return side, kind, start, end


def zone_at(layout, s, d):
    """Zone kind (index into ZONES) beyond the sidewalk at road points s, d (arrays)."""
    return _zone_lookup(layout, np.asarray(s, dtype=np.float64), np.asarray(d, dtype=np.float64))[1]


def green_between(layout, s_lo, s_hi, d):
    """Whether a green zone on the side of d (arrays) overlaps [s_lo, s_hi] (arrays)."""
    result = np.zeros(np.shape(s_lo), dtype=bool)
    side = np.asarray(d) > 0
    for k in range(2):
        green = np.flatnonzero(layout.zone_kind[k] == ZONE['green'])
        starts, ends = layout.zone_edges[k][green], layout.zone_edges[k][green + 1]
        here = side == bool(k)
        overlapping = (np.searchsorted(starts, s_hi[here], side='left')
                       - np.searchsorted(ends, s_lo[here], side='right'))
        result[here] = overlapping > 0
    return result


def terrain_regions(layout):
    """Where the terrain rises above the road: per green zone, the global centre (2,) and half
    extents (2,) of an axis-aligned rectangle (s inside the zone, |d| beyond the sidewalk on
    its side; 10 km deep). The terrain is above 0 inside and 0 on the edges and outside."""
    depth = 1e4
    for k, side in enumerate((-1.0, 1.0)):
        for zone in np.flatnonzero(layout.zone_kind[k] == ZONE['green']):
            start, end = layout.zone_edges[k][zone], layout.zone_edges[k][zone + 1]
            yield (layout.origin + [(start + end) / 2, side * (SIDEWALK_OUTER + depth / 2)],
                   np.array([(end - start) / 2, depth / 2]))


def _smoothstep(x):
    """0 below 0, 1 above 1, a smooth cubic step between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def terrain_height(layout, s, d):
    """Height (metres above the road) of the ground surface at road points s, d (arrays): 0 on
    the road, the sidewalk band (its raise is a box, see roadside.py), plazas and lots; a smooth
    undulation between 0 and the zone's peak height in green zones, rising over TERRAIN_RAMP
    metres from the zone's edges."""
    s = np.asarray(s, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    side, kind, start, end = _zone_lookup(layout, s, d)
    height = np.zeros(s.shape)
    green = (kind == ZONE['green']) & (np.abs(d) > SIDEWALK_OUTER)
    if not green.any():
        return height
    s, d, side, start, end = s[green], d[green], side[green], start[green], end[green]
    peak, wave_s, wave_2, phase_s, phase_2, angle = layout.terrain[side].T
    ramp = (_smoothstep((np.abs(d) - SIDEWALK_OUTER) / TERRAIN_RAMP)
            * _smoothstep((s - start) / TERRAIN_RAMP) * _smoothstep((end - s) / TERRAIN_RAMP))
    along = s * np.cos(angle) + d * np.sin(angle)
    wave = (0.5 + 0.3 * np.sin(2 * np.pi * s / wave_s + phase_s)
            + 0.2 * np.sin(2 * np.pi * along / wave_2 + phase_2))
    height[green] = peak * ramp * wave
    return height


def support_height(layout, s, d):
    """Height (metres above the road) on which an object standing at s, d rests: the sidewalk
    top in the curb and sidewalk band, the terrain elsewhere."""
    d = np.asarray(d, dtype=np.float64)
    band = (np.abs(d) >= PARKING_OUTER) & (np.abs(d) < SIDEWALK_OUTER)
    return np.where(band, SIDEWALK_HEIGHT, terrain_height(layout, s, d))


def stands_level(layout, x, y, yaw, length, width, tolerance=0.05):
    """Whether a footprint (global centre x, y metres, yaw radians, length and width metres)
    rests on one level: its corners' support heights differ from its centre's by less than
    `tolerance` metres (so it does not straddle a curb)."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    local = np.array([[0, 0], [1, 1], [1, -1], [-1, 1], [-1, -1]]) * [length / 2, width / 2]
    xy = np.stack([x + cos * local[:, 0] - sin * local[:, 1],
                   y + sin * local[:, 0] + cos * local[:, 1]], axis=1)
    height = support_height(layout, *layout.road_coordinates(xy))
    return bool(np.abs(height - height[0]).max() < tolerance)


def ground_kind(layout, s, d):
    """Background kind (index into BACKGROUND_KINDS) of the ground at road points s, d."""
    s = np.asarray(s, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    ad = np.abs(d)
    kind = _ZONE_KIND[_zone_lookup(layout, s, d)[1]]
    kind[ad < SIDEWALK_OUTER] = KIND['sidewalk']
    kind[ad < PARKING_OUTER] = KIND['driveable_surface']
    return kind


def surface_kind(layout, s, d):
    """Ground surface index (see SURFACES) at road points s, d (arrays, metres)."""
    s = np.asarray(s, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    ad = np.abs(d)
    kind = _ZONE_SURFACE[_zone_lookup(layout, s, d)[1]].astype(np.int8)
    kind[ad < SIDEWALK_OUTER] = SURFACE['sidewalk']
    kind[ad < CURB_OUTER] = SURFACE['curb']
    kind[ad < PARKING_OUTER] = SURFACE['parking']
    kind[ad < BIKE_LANE_OUTER] = SURFACE['bike_lane']
    kind[ad < CARRIAGEWAY_HALF] = SURFACE['asphalt']

    def on_line(centre):
        return np.abs(ad - centre) < LINE_WIDTH / 2

    kind[on_line(BIKE_LANE_OUTER - LINE_WIDTH) | on_line(CARRIAGEWAY_HALF - LINE_WIDTH)] = \
        SURFACE['lane_line']
    dashes = np.mod(s, DASH_PERIOD) < DASH_LENGTH
    kind[on_line(LANE_WIDTH) & dashes] = SURFACE['lane_line']
    kind[(ad > 0.06) & (ad < 0.06 + LINE_WIDTH)] = SURFACE['centre_line']
    along = np.mod(s - layout.crosswalk_offset + CROSSWALK_WIDTH / 2, CROSSWALK_SPACING)
    stripes = np.mod(d + CARRIAGEWAY_HALF, 1.0) < 0.55
    kind[(along < CROSSWALK_WIDTH) & (ad < CARRIAGEWAY_HALF - LINE_WIDTH) & stripes] = \
        SURFACE['crosswalk']
    return kind
