"""How Residuals shares the boundary point budget among the conditions without their own n."""

import torch
from closed_form import Closed

from kanpde import Dirichlet, Neumann, Problem, Rectangle, Robin, laplacian
from kanpde.losses import Residuals

DT = torch.float64


def test_a_condition_with_its_own_n_first_does_not_shift_the_sharers_ranks():
    # The remainder of the shared budget goes to the first sharers by their rank among the
    # sharers. Ranked among all conditions instead, a Neumann with its own n placed first made
    # Dirichlet the 2nd (no extra point): boundary=11 gave [7, 5, 5], and 10 of 11 were used.
    conditions = [
        Neumann(0.0, on="bottom", n=7),
        Dirichlet(0.0, on=["left", "right"]),
        Robin(1.0, 1.0, 0.0, on="top"),
    ]
    problem = Problem(name="own_n_first", domain=Rectangle([0, 0], [1, 1]),
                      pde=lambda x, u: laplacian(u, x), conditions=conditions)  # fmt: skip
    field = Closed(lambda x: torch.sin(x[:, :1] + x[:, 1:]))
    for total, counts in [(11, [7, 6, 5]), (13, [7, 7, 6]), (10, [7, 5, 5])]:
        res = Residuals(problem, field, {"interior": 10, "boundary": total, "method": "uniform"},
                        {}, DT, "cpu")  # fmt: skip
        got = [t.points.x.shape[0] for t in res.terms]
        assert got == counts, total
        assert sum(got[1:]) == total  # the sharers use the whole budget
