"""Mutation-audit additions for geometry, conditions and operators.

Each test pins a fact that a plausible slip in :mod:`kanpde.geometry`,
:mod:`kanpde.conditions` or :mod:`kanpde.operators` got past the rest of the suite: areas and
lengths against closed forms (shoelace, products of widths, duration times perimeter), exact
end points of equispaced grids, derivatives of polynomials, and the documented handling of
sampling methods, seeds and predicates by the conditions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kanpde import Dirichlet, Initial, Neumann, Periodic, PointData
from kanpde.geometry import Box, Disk, Interval, Polygon, Rectangle, Time
from kanpde.operators import d, derivatives

DT = torch.float64
L_VERTS = [(-1, -1), (1, -1), (1, 0), (0, 0), (0, 1), (-1, 1)]
TRIANGLE = [(0.0, 0.0), (4.0, 0.0), (0.0, 3.0)]  # legs 4 and 3, hypotenuse 5, area 6


def l_csg():
    return Rectangle([-1, -1], [1, 1]) - Rectangle([0, 0], [1, 1])


# ----------------------------------------------------------------------------- polygons


# Bug caught: the polygon's area kept the sign of the shoelace sum, so a clockwise polygon had a
# negative measure (and a negative fill ratio for grid sampling).
def test_polygon_measure_is_the_shoelace_area_in_either_orientation():
    for verts, area, perimeter in ((TRIANGLE, 6.0, 12.0), (L_VERTS, 3.0, 8.0)):
        for v in (verts, verts[::-1]):  # counter-clockwise, then clockwise
            p = Polygon(v)
            assert p.measure == pytest.approx(area, rel=1e-15), v
            assert p.boundary_measure == pytest.approx(perimeter, rel=1e-15), v


# Bug caught: a repeated closing vertex dropped from the front, which renumbered the edges
# (edge0 ran from vertex 1 to vertex 2).
def test_a_closing_vertex_keeps_the_edge_numbering():
    p = Polygon(L_VERTS + [L_VERTS[0]])
    np.testing.assert_array_equal(p.vertices, np.asarray(L_VERTS, float))
    v = np.asarray(L_VERTS, float)
    for i in range(len(v)):
        a, b = v[i], v[(i + 1) % len(v)]
        x = p.boundary(20, on=f"edge{i}").points
        # every point lies on the segment a -> b: zero cross product, parameter in [0, 1]
        e = b - a
        cross = (x[:, 0] - a[0]) * e[1] - (x[:, 1] - a[1]) * e[0]
        s = (x - a) @ e / (e @ e)
        assert np.abs(cross).max() <= 1e-14 and s.min() >= 0 and s.max() <= 1, i


# Bug caught (box faces and polygon edges): the end point of a parameter range computed as
# lo + 1 * (hi - lo), which misses hi by an ulp for bounds such as -1.7 and 0.3, so grid
# "corners" lay outside the closed box and did not meet the neighbouring face's corner.
def test_grid_end_points_are_the_exact_corners_and_vertices():
    lo, hi = np.array([-0.3, -1.7]), np.array([0.1, 0.3])
    assert -1.7 + (0.3 - -1.7) != 0.3  # the premise: the naive end point is off
    r = Rectangle(lo, hi)
    bs = r.boundary(40, method="grid")
    assert np.all(bs.points >= lo) and np.all(bs.points <= hi)  # closed box, no tolerance
    corners = [(x, y) for x in (lo[0], hi[0]) for y in (lo[1], hi[1])]
    rows = [tuple(p) for p in bs.points]
    for c in corners:  # each corner once per adjacent face, bit for bit
        assert rows.count(c) == 2, c
    verts = np.array([(-1.7, -0.3), (0.1, -0.3), (0.1, 0.35)])
    poly = Polygon(verts)
    g = poly.boundary(30, method="grid")
    for i in range(3):
        p = g.points[g.mask(f"edge{i}")]
        np.testing.assert_array_equal(p[0], verts[i])
        np.testing.assert_array_equal(p[-1], verts[(i + 1) % 3])


# ----------------------------------------------------------------------------- boxes / CSG


# Bug caught: the faces of axes beyond the third were never made (a 4-D box had six faces).
def test_a_4d_box_has_all_eight_faces_shared_by_area():
    hi = np.array([1.0, 2.0, 3.0, 4.0])
    b = Box([0, 0, 0, 0], hi)
    names = [f"x{a}{m}" for a in range(1, 5) for m in ("min", "max")]
    assert b.piece_names()[:8] == names
    # face normal to axis a has the product of the other widths: 24, 12, 8, 6 (twice each)
    areas = np.repeat([np.prod(np.delete(hi, a)) for a in range(4)], 2)
    assert b.boundary_measure == pytest.approx(2 * (24 + 12 + 8 + 6), rel=1e-15)
    bs = b.boundary(1000, seed=0)
    np.testing.assert_array_equal(np.bincount(bs.piece, minlength=8), 1000 * areas / areas.sum())
    for i, name in enumerate(names):
        axis, side = divmod(i, 2)
        p, n = bs.points[bs.mask(name)], bs.normals[bs.mask(name)]
        assert np.all(p[:, axis] == (0.0, hi[axis])[side]), name
        assert np.all(n == np.eye(4)[axis] * (1.0 if side else -1.0)), name


# Bug caught: a CSG membership probe using only the positive axis directions: from 5-D on
# there are no diagonal probes, so points on the "max" faces of a 5-D difference were outside.
def test_a_5d_difference_contains_its_outer_faces():
    dom = Box([0] * 5, [1] * 5) - Box([0.4] * 5, [0.6] * 5)
    faces, outward = [], []
    for a in range(5):
        for v, sign in ((0.0, -1.0), (1.0, 1.0)):  # centre of the min / max face of axis a
            p = np.full(5, 0.5)
            p[a] = v
            faces.append(p)
            outward.append(sign * np.eye(5)[a])
    faces, outward = np.array(faces), np.array(outward)
    assert dom.contains(faces).all()  # the closed set contains its boundary
    assert not dom.contains(faces, tol=-1e-9).any()  # ... which is not strict interior
    assert not dom.contains(faces + 1e-3 * outward).any()
    assert dom.contains(faces - 1e-3 * outward, tol=-1e-9).all()


# Bug caught: the share of a CSG piece that a predicate accepts ignored the piece's own keep
# mask, so the L-shape's half-kept outer edges got the weight of their full length.
def test_predicate_on_a_csg_boundary_shares_points_by_the_kept_length():
    dom = l_csg()  # pieces left, right, bottom, top, op1.left, op1.bottom
    lengths = np.array([2, 1, 2, 1, 1, 1])  # total 8
    bs = dom.boundary(800, on=lambda p: p[:, 0] > -2, seed=0)  # accepts everything
    np.testing.assert_array_equal(np.bincount(bs.piece, minlength=6), 100 * lengths)
    # x > 1/2: right edge (length 1), bottom and op1.bottom halves (1/2 each)
    bs = dom.boundary(400, on=lambda p: p[:, 0] > 0.5, seed=0)
    np.testing.assert_array_equal(np.bincount(bs.piece, minlength=6), [0, 200, 100, 0, 0, 100])


# ----------------------------------------------------------------------------- space-time


# Bug caught: the space-time measure (and the lateral pieces' measures) multiplied by t1
# instead of the duration t1 - t0; the existing tests all start at t0 = 0.
def test_space_time_measures_use_the_duration():
    st = Disk([0, 0], 1) * Time(1, 3)
    assert st.measure == pytest.approx(2 * math.pi, rel=1e-15)  # pi r^2 * 2
    assert st.boundary_measure == pytest.approx(4 * math.pi, rel=1e-15)  # 2 pi r * 2
    st = Rectangle([0, 0], [2, 1]) * Time(0.5, 2)
    assert st.measure == pytest.approx(3.0, rel=1e-15)
    assert st.boundary_measure == pytest.approx(9.0, rel=1e-15)  # perimeter 6 * 1.5


# Bug caught: lifting a piece to space-time marked every parameter non-periodic, so the
# circle's grid repeated theta = 0 at theta = 2 pi on every time level.
def test_space_time_grid_on_a_circle_repeats_no_angle():
    bs = (Disk([0, 0], 1) * Time(0, 1)).boundary(200, method="grid")
    assert len(np.unique(bs.points, axis=0)) == len(bs)
    frac = np.mod(np.arctan2(bs.points[:, 1], bs.points[:, 0]), 2 * np.pi) / (2 * np.pi)
    times = np.unique(bs.points[:, 2])
    for t in times:  # every time level: angles k/m, k = 0..m-1 (a periodic grid)
        f = np.sort(frac[bs.points[:, 2] == t])
        np.testing.assert_allclose(f, np.arange(len(f)) / len(f), atol=1e-12)
    assert len(bs) == len(times) * len(f)


# Bug caught: a polygon edge's parameter extent of 1 instead of its length: the lateral grid
# of polygon x time then had equal node counts along the edge and along time (spacings 4:1
# on the long leg) instead of near-equal spacing.
def test_polygon_space_time_lateral_grid_has_near_equal_spacing():
    bs = (Polygon(TRIANGLE) * Time(0, 1)).boundary(600, method="grid")
    for i, length in enumerate((4.0, 5.0, 3.0)):
        p = bs.points[bs.mask(f"edge{i}")]
        n_s = len(np.unique(np.round(p[:, :2], 12), axis=0))
        n_t = len(np.unique(p[:, 2]))
        assert n_s * n_t == len(p)  # a tensor grid
        ratio = (length / (n_s - 1)) / (1.0 / (n_t - 1))
        assert 2 / 3 <= ratio <= 3 / 2, (i, n_s, n_t, ratio)


# ----------------------------------------------------------------------------- conditions


# Bug caught: a boundary condition's on= predicate not passed to the sampler (the whole
# boundary was used).
def test_a_condition_with_a_predicate_samples_only_where_it_holds():
    sq = Rectangle([0, 0], [1, 1])
    for cond in (
        Dirichlet(0.0, on=lambda p: p[:, 1] > 0.5),
        Neumann(0.0, on=lambda p: p[:, 1] > 0.5),
    ):
        x, n = cond.sample(sq, 64, "sobol", 0)
        assert len(x) == 64 and np.all(x[:, 1] > 0.5)
        # the accepted part: top (length 1) and the upper halves of left and right (1/2 each)
        top = x[:, 1] == 1
        assert top.sum() == 32 and np.all(n[top] == [0, 1])
        assert np.all(np.abs(n[~top, 0]) == 1) and np.all(n[~top, 1] == 0)


# Bug caught: a looser PointData tolerance (1e-3 absolute): data a hundred thousandth of the
# domain's size away (10x the documented millionth) must be refused.
def _pushed(domain, x, off):
    return [x[0] + off, x[1]] if isinstance(domain, Rectangle) else [v * (1 + off) for v in x]


@pytest.mark.parametrize(
    "domain, x",
    [
        (Rectangle([0, 0], [1, 1]), [1.0, 0.5]),  # on the right edge
        (Disk([0, 0], 1), [math.cos(0.7), math.sin(0.7)]),  # on the circle
    ],
    ids=["square", "disk"],
)
def test_point_data_just_beyond_the_tolerance_is_refused(domain, x):
    # tolerance 1e-6 * |hi - lo|: 1.4e-6 for the unit square, 2.8e-6 for the unit disk
    PointData([_pushed(domain, x, 1e-7)], [1.0]).points(domain, ["u"], None, "sobol", 0, DT, "cpu")
    with pytest.raises(ValueError, match="points lie outside the domain"):
        far = _pushed(domain, x, 1e-5)
        PointData([far], [1.0]).points(domain, ["u"], None, "sobol", 0, DT, "cpu")


# Bug caught: Periodic without the check that its faces lie on the planes x = lo and x = hi.
# In this union of [0, 1] x [0, 1], [1, 2] x [0, 1] and a detached [-1, -0.5] x [0, 1], the
# piece named "xmin" is the first square's left edge at x = 0, not at lo = -1: its points were
# moved to x = -1 and paired with x = 2 (both in the domain), a pairing of other faces.
def test_periodic_refuses_an_xmin_face_off_the_bounding_plane():
    dom = Rectangle([0, 0], [1, 1]) | Rectangle([1, 0], [2, 1]) | Rectangle([-1, 0], [-0.5, 1])
    assert np.all(dom.boundary(8, on="xmin").points[:, 0] == 0.0)  # the premise
    with pytest.raises(ValueError, match="no pair of opposite faces x = -1 and 2"):
        Periodic("x").sample(dom, 8, "sobol", 0)


# Bugs caught: Initial and Periodic sampling with the default method instead of the one asked
# for, or with a fixed seed (resampling would then redraw the same points).
def test_initial_and_periodic_honour_the_method():
    st = Interval(0, 1) * Time(0.5, 1)
    x, normals = Initial(0.0).sample(st, 4, "grid", 0)
    assert normals is None
    # cell-centred grid of 4 on [0, 1], at t = t0
    np.testing.assert_allclose(x, [[0.125, 0.5], [0.375, 0.5], [0.625, 0.5], [0.875, 0.5]])
    x, _ = Periodic("x").sample(Rectangle([0, 0], [1, 2]), 5, "grid", 0)
    # the x = 0 face's grid, y = 0, 0.5, ..., 2 end points included, paired with x = 1
    y = np.linspace(0, 2, 5)
    np.testing.assert_allclose(x[:5], np.stack([np.zeros(5), y], 1), atol=1e-15)
    np.testing.assert_allclose(x[5:], np.stack([np.ones(5), y], 1), atol=1e-15)


@pytest.mark.parametrize("method", ["uniform", "sobol"])
def test_initial_and_periodic_honour_the_seed(method):
    st = Rectangle([0, 0], [1, 1]) * Time(0, 1)
    for cond in (Initial(0.0), Periodic("x")):
        a, _ = cond.sample(st, 16, method, 1)
        np.testing.assert_array_equal(a, cond.sample(st, 16, method, 1)[0])
        assert not np.allclose(a, cond.sample(st, 16, method, 2)[0]), cond


# ----------------------------------------------------------------------------- operators


# Bug caught: a negative axis index taken as its absolute value (-1 read as axis 1, not the
# last axis).
def test_a_negative_axis_counts_from_the_end():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(10, 3, generator=g, dtype=DT).requires_grad_(True)
    X, Y, Z = (x[:, i : i + 1] for i in range(3))
    u = X * Y**2 * Z**3
    Xd, Yd, Zd = X.detach(), Y.detach(), Z.detach()
    for ctx in (None, ("x", "y", "z")):
        with derivatives(ctx):
            assert torch.allclose(d(u, x, -1), 3 * Xd * Yd**2 * Zd**2, rtol=0, atol=1e-14)
            assert torch.allclose(d(u, x, -3), Yd**2 * Zd**3, rtol=0, atol=1e-14)
            assert torch.allclose(d(u, x, -2, -1), 6 * Xd * Yd * Zd**2, rtol=0, atol=1e-14)
