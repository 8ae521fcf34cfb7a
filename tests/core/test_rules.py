"""The rules the findings and the one-liners share: one table, its values where the findings read them, and the
same numbers in the words the page shows."""

from __future__ import annotations

import core.findings as findings
import core.summary as summary
from core import rules


def test_the_findings_and_the_one_liners_read_the_one_table():
    assert findings.DROP == rules.DROP.value and findings.SHARE == rules.SHARE.value
    assert summary.SAME == rules.SAME.value


def test_the_page_states_every_rule_with_its_value_and_its_reason():
    words = rules.in_words()
    assert len(words) == 1 + len(rules.RULES)
    for rule, sentence in zip(rules.RULES, words[1:], strict=True):
        assert rule.why in sentence
    for rule in (rules.DROP, rules.SAME):
        assert f"{rule.value:.2f}" in rule.means
    assert "untrained floor" in rules.ALIKE.means and "half" in rules.SHARE.means
