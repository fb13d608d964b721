"""What the teacher must answer, and checking that it did: JSON found in its reply, each example with the
technique's fields as non-empty text, topic trees in a lenient shape. Every rejection has a reason, so a
run can say why rows were dropped."""

from __future__ import annotations

import json
import re
from typing import Any

from workers.training.techniques import REGISTRY

# The fields the teacher writes for each technique, as each declares (techniques.base.Synthetic); DPO's
# `rejected` comes from a weaker source.
FIELDS: dict[str, tuple[str, ...]] = {name: t.synthetic.fields for name, t in REGISTRY.items()}
HINTS: dict[str, str] = {name: t.synthetic.hint for name, t in REGISTRY.items()}
# The techniques whose requests differ (fields and hint), in registry order: a technique that asks the
# teacher for what an earlier one asks (KTO's examples are DPO's) adds no request the built-in teacher
# has to learn.
SHAPES: tuple[str, ...] = tuple(
    name
    for i, name in enumerate(REGISTRY)
    if (FIELDS[name], HINTS[name]) not in [(FIELDS[n], HINTS[n]) for n in tuple(REGISTRY)[:i]]
)
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class NotJson(ValueError):
    pass


def extract_json(reply: str) -> Any:
    """The first JSON object or array in a reply: the whole reply, a fenced block, or the first {...} or
    [...] that parses. NotJson when there is none."""
    text = reply.strip()
    candidates = [text, *FENCE.findall(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text[match.start() :])
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict | list):
            return value
    raise NotJson("not JSON")


def examples_in(reply: str, technique: str) -> tuple[list[dict[str, str]], list[str]]:
    """(the valid examples, a reason for each invalid one) in a teacher's reply. Accepted shapes:
    {"examples": [...]}, a list, or one object."""
    fields = FIELDS[technique]
    try:
        value = extract_json(reply)
    except NotJson:
        return [], ["not JSON"]
    if isinstance(value, dict) and isinstance(value.get("examples"), list):
        value = value["examples"]
    items = value if isinstance(value, list) else [value]
    if not items:
        return [], ["no examples"]
    good: list[dict[str, str]] = []
    reasons: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            reasons.append("not an object")
            continue
        missing = [f for f in fields if f not in item]
        if missing:
            reasons.append(f"missing {missing[0]}")
            continue
        empty = [f for f in fields if not isinstance(item[f], str) or not item[f].strip()]
        if empty:
            reasons.append(f"empty or not text: {empty[0]}")
            continue
        good.append({f: item[f].strip() for f in fields})
    return good, reasons


def topics_in(reply: str) -> list[dict[str, Any]]:
    """A topic tree [{"name": str, "subtopics": [str, ...]}, ...] from {"topics": [...]}, a list of names
    or of {"name", "subtopics"}; NotJson or ValueError when there is none."""
    value = extract_json(reply)
    if isinstance(value, dict):
        value = value.get("topics")
    if not isinstance(value, list):
        raise ValueError("no list of topics")
    tree = []
    for item in value:
        if isinstance(item, str) and item.strip():
            tree.append({"name": item.strip()[:120], "subtopics": []})
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
            subs = [s.strip()[:120] for s in item.get("subtopics") or [] if isinstance(s, str) and s.strip()]
            tree.append({"name": item["name"].strip()[:120], "subtopics": subs})
    if not tree:
        raise ValueError("no named topics")
    return tree


def leaves(tree: list[dict[str, Any]]) -> list[str]:
    """Each subtopic as "topic / subtopic"; a topic without subtopics is a leaf itself."""
    found: list[str] = []
    for topic in tree:
        found += [f"{topic['name']} / {sub}" for sub in topic.get("subtopics") or []] or [topic["name"]]
    return found
