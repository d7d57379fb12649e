"""The controller writes conditions in the API's shape (kaib.api.status.Condition), the one definition."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kaib.api.status import Condition
from kaib.controller import conditions as c

T0 = "2026-01-01T00:00:00Z"


def test_written_conditions_are_api_conditions_exactly() -> None:
    conds = c.summarize(None, state="stalled", reason="Failed", message="m", generation=3, now=T0)
    conds = c.set_condition(conds, "Customized", c.FALSE, "Failed", "", None, T0)
    for cond in conds:
        assert Condition.model_validate(cond).model_dump(exclude_none=True) == cond
    assert conds[-1] == {
        "type": "Customized",
        "status": "False",
        "reason": "Failed",
        "message": "",
        "lastTransitionTime": T0,
    }


def test_a_status_outside_true_false_unknown_is_refused() -> None:
    with pytest.raises(ValidationError, match="status"):
        c.set_condition(None, "Ready", "Yes", "r", "m", 1, T0)
