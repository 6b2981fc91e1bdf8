"""Issue 12, point 4: one translator from validation errors to ``ConfigError``
(``rnnmem.errors.config_error_from``), used by the study registry, the sweep file and every study's
config validation."""

from __future__ import annotations

from typing import Literal, Union

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rnnmem.errors import ConfigError, config_error_from


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: int = Field(ge=1)
    size: int
    cell: Literal["lstm", "gru"] = "lstm"
    seeds: Union[int, list[int]] = 1
    lr: float = 0.1

    @field_validator("lr")
    @classmethod
    def _lr(cls, v):
        if v > 1:
            raise ValueError("lr above 1 diverges; use <= 1")
        return v

    @model_validator(mode="after")
    def _cross(self):
        if self.units > 100 and self.cell == "gru":
            raise ValueError("gru with more than 100 units needs --dtype float64")
        return self


def _error(**config) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        _Cfg(**config)
    return err.value


def test_every_problem_is_one_clause_naming_option_and_value():
    err = config_error_from(_error(units=0, lr=5, colour="red"), "s.yaml: config (units=0)",
                            missing_hint=" (under grid)", allowed=["units", "size"], suffix=" (study 'x')")
    assert isinstance(err, ConfigError)
    assert str(err) == ("s.yaml: config (units=0): option units = 0: Input should be greater than or equal to 1; "
                        "option size is required: give it a value (under grid); option lr = 5: lr above 1 diverges; "
                        "use <= 1; unknown option 'colour'; allowed options: units, size (study 'x')")
    assert "{" not in str(err)   # the whole config is never dumped as a missing field's input


def test_union_members_are_one_clause_and_cross_checks_keep_their_message():
    msg = str(config_error_from(_error(units=1, size=1, seeds="abc"), "cfg", what="key"))
    assert msg.count("seeds") == 1 and msg.startswith("cfg: key seeds = 'abc': Input should be a valid integer")
    assert "or input should be a valid list" in msg and "list[int]" not in msg
    assert str(config_error_from(_error(units=101, size=1, cell="gru"), "cfg")) == \
        "cfg: gru with more than 100 units needs --dtype float64"


def test_other_errors_keep_their_text():
    assert str(config_error_from(ConfigError("P must be < T"), "zhao config")) == "zhao config: P must be < T"
    assert str(config_error_from(ValueError("bad"), "w", suffix="!")) == "w: bad!"


def test_every_translation_in_rnnmem_goes_through_it():
    """No module catches pydantic's ValidationError and builds its own message: each catch raises
    ``config_error_from(...)``."""
    import ast
    from pathlib import Path

    import rnnmem

    bad = []
    for path in sorted(Path(rnnmem.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None and "ValidationError" in ast.unparse(node.type):
                if "config_error_from" not in ast.unparse(node):
                    bad.append(f"{path.relative_to(path.parents[1])}:{node.lineno}")
    assert not bad, bad


def test_study_configs_report_every_rejected_option():
    from rnnmem.studies.zhao import validate_config

    with pytest.raises(ConfigError) as err:
        validate_config({"model": "rnn", "hidden": 0})
    assert str(err.value).startswith("zhao config: ")
    assert "option hidden = 0" in str(err.value)
