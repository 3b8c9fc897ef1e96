"""How keys and values appear in text output (`outputs.render`): strings as they are, the rest as JSON."""

import enum
import json

import pytest

from mrengine.outputs import render


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize("value", [0, 7, -12, 2**70, -(2**63), True, False, Level.HIGH, 1.5, None, [1, "a"], {"k": 2}])
def test_every_value_but_a_string_is_written_as_its_json(value):
    assert render(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_a_string_is_written_as_it_is():
    assert render('caf\u00e9 "quoted"') == 'caf\u00e9 "quoted"'
