"""Person edits after a run (``fervid persons``): merge persons, name them, drop them, as table operations.

Identity can split one person in two (a profile, then a frontal view) or keep a stranger in
the background as a person of their own. A researcher who sees that in the gallery fixes it
here, without running any model again. This module is the pure part: what the edits are
(:class:`PersonEdits`, checked on their own), whether they fit a run's faces table
(:func:`plan_edits`, checked against it), and the new faces, summary and persons tables.
:mod:`fervid.identity.rewrite` writes every output again from them.

Semantics (docs/identity.md says the same for researchers):

* ``merge`` ``(P3, P5)``: P5's faces become P3's; the first ID is kept. Two persons seen in one
  frame cannot be one person, so that merge is an error. Merges apply in the order given
  (``(P3, P5), (P5, P7)`` makes all three P3).
* ``names`` ``{P2: "Ada"}``: the ``person`` column, the report, ELAN and the video say Ada. A
  name given to a person merged away names the person it went into.
* ``drop`` ``P9``: P9's faces stay in the faces table (face tracks are facts: frame counts and
  the per-track summary stay true) with ``person_id`` 0, the value of a face that belongs to
  no person; they leave every conclusion about persons (persons table, report, gallery,
  moments, ELAN, timeline plot).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from fervid.io.tables import add_persons, summarize_persons
from fervid.options import option

#: ``P3``, ``p3`` or ``3``: a person ID as the report and the tables write it.
_PERSON = re.compile(r"^[Pp]?(\d+)$")
#: The person ID of a face that belongs to no person (untracked, or dropped).
NO_PERSON = 0

PersonRef = int | str


class EditError(ValueError):
    """Person edits that cannot be applied: one line, naming the IDs and the reason."""


def is_person_id(text: str) -> bool:
    """Whether a command-line word is a person ID (``P3``, ``3``) rather than a folder."""
    return _PERSON.match(text.strip()) is not None


def person_id(ref: PersonRef) -> int:
    """The person ID of ``P3`` / ``3``; an :class:`EditError` for anything else."""
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        value = int(ref)
    else:
        match = _PERSON.match(str(ref).strip())
        if match is None:
            raise EditError(f"{ref!r} is not a person ID (write it as in the report: P3)")
        value = int(match.group(1))
    if value < 1:
        raise EditError(f"{ref!r} is not a person ID (they start at P1)")
    return value


@dataclass(frozen=True)
class PersonEdits:
    """One ``fervid persons`` call: merges (first ID kept), names, drops; checked for conflicts on creation.

    Build it with :meth:`of` from IDs written ``P3`` or ``3``.
    """

    merge: tuple[tuple[int, ...], ...] = option(
        (),
        "Merge persons: --merge P3 P5 (or P3,P5) folds P5 into P3 (the first ID is kept). Repeatable.",
        metavar="KEEP OTHER",
    )
    names: tuple[tuple[int, str], ...] = option((), "Name a person: --name P2=Ada. Repeatable.", metavar="ID=NAME")
    drop: tuple[int, ...] = option(
        (), "Drop a person from the conclusions (its faces stay in the faces table, person_id 0). Repeatable.",
        metavar="ID",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if not (self.merge or self.names or self.drop):
            raise EditError("nothing to do: give --merge, --name or --drop")
        for group in self.merge:
            if len(group) < 2:
                raise EditError(f"--merge {label_list(group)}: a merge needs two persons or more")
            if len(set(group)) < len(group):
                raise EditError(f"--merge {label_list(group)}: a person cannot be merged with itself")
        merged = {p for group in self.merge for p in group}
        named = [p for p, _ in self.names]
        if len(set(named)) < len(named):
            twice = next(p for p in named if named.count(p) > 1)
            raise EditError(f"P{twice} is named twice; give one --name P{twice}=NAME")
        for p, name in self.names:
            if not name.strip() or any(ch in name for ch in "\r\n\t"):
                raise EditError(f"--name P{p}={name!r}: a name must be one line of text")
        for p in self.drop:
            if p in merged:
                raise EditError(f"P{p} is both merged and dropped; choose one")
            if p in named:
                raise EditError(f"P{p} is both named and dropped; choose one")

    @classmethod
    def of(
        cls, merge: Iterable[Sequence[PersonRef]] = (), names: Mapping[PersonRef, str] | None = None,
        drop: Iterable[PersonRef] = (),
    ) -> PersonEdits:  # fmt: skip
        """Edits from IDs as people write them: ``of(merge=[("P3", "P5")], names={"P2": "Ada"}, drop=["P9"])``."""
        return cls(
            tuple(tuple(person_id(p) for p in group) for group in merge),
            tuple((person_id(p), str(name).strip()) for p, name in (names or {}).items()),
            tuple(dict.fromkeys(person_id(p) for p in drop)),
        )

    @classmethod
    def from_cli(
        cls, merge: Sequence[str], name: Sequence[str], drop: Sequence[str], more: Sequence[str] = ()
    ) -> PersonEdits:
        """Edits from the command line: ``--merge P3,P5`` (commas or spaces), ``--name P2=Ada``, ``--drop P9``.

        ``more``: IDs the command line left over, in order. ``--merge P3 P5`` reaches here as
        ``--merge P3`` and a loose ``P5`` (an option takes one value); loose IDs complete the
        merges that have one ID, in order, when that is unambiguous: all of them to the only
        such merge, or one to each.
        """
        groups = [[p for p in re.split(r"[,\s]+", text.strip()) if p] for text in merge]
        if more:
            single = [group for group in groups if len(group) == 1]
            if len(single) == 1:
                single[0].extend(more)
            elif single and len(single) == len(more):
                for group, ref in zip(single, more):
                    group.append(ref)
            else:
                loose = " ".join(more)
                raise EditError(f"cannot tell which persons {loose} go with; write each merge as --merge P3,P5")
        names: dict[PersonRef, str] = {}
        for text in name:
            ref, sep, value = text.partition("=")
            if not sep:
                raise EditError(f"--name {text!r}: write it as --name P2=Ada")
            if person_id(ref) in {person_id(r) for r in names}:
                raise EditError(f"P{person_id(ref)} is named twice; give one --name P{person_id(ref)}=NAME")
            names[ref] = value
        return cls.of(groups, names, drop)

    @classmethod
    def from_record(cls, entry: Mapping[str, Any]) -> PersonEdits:
        """The edits of one entry of run.json's ``edits`` (:meth:`record`)."""
        return cls.of(entry.get("merge", []), entry.get("names", {}), entry.get("drop", []))

    def record(self) -> dict[str, object]:
        """The edits as run.json keeps them: IDs as the report writes them."""
        return {
            "merge": [[f"P{p}" for p in group] for group in self.merge],
            "names": {f"P{p}": name for p, name in self.names},
            "drop": [f"P{p}" for p in self.drop],
        }

    def describe(self) -> str:
        """``P5 merged into P3; P2 named Ada; P9 dropped`` (the CLI's closing line)."""
        parts = [f"{label_list(group[1:])} merged into P{group[0]}" for group in self.merge]
        parts += [f"P{p} named {name}" for p, name in self.names]
        parts += [f"{label_list(self.drop)} dropped"] if self.drop else []
        return "; ".join(parts)


def edit_option(name: str) -> Any:
    """The help and metavar of one edit option (``merge``, ``names``, ``drop``), for the CLI."""
    from fervid.options import spec_of

    return spec_of(next(f for f in fields(PersonEdits) if f.name == name))


def label_list(ids: Iterable[int]) -> str:
    return ", ".join(f"P{p}" for p in ids)


@dataclass(frozen=True)
class EditPlan:
    """What the edits do to one run: every old person's new ID (``NO_PERSON`` when dropped) and the final names."""

    new_of_old: dict[int, int]
    names: dict[int, str] = field(default_factory=dict)

    def sources(self, new: int) -> list[int]:
        """The old persons that make up a new one."""
        return [old for old, n in self.new_of_old.items() if n == new]

    def person_of_track(self, faces: pd.DataFrame) -> dict[int, int]:
        """Each face track's new person (a track belongs to one person: ``fervid.io.tables.add_persons``)."""
        tracks = faces.loc[faces["face_id"] >= 1, ["face_id", "person_id"]].drop_duplicates("face_id")
        return {int(t): self.new_of_old.get(int(p), NO_PERSON) for t, p in tracks.itertuples(index=False)}


def plan_edits(faces: pd.DataFrame, edits: PersonEdits) -> EditPlan:
    """Check the edits against a run's faces table and work out every person's new ID and name.

    Errors (:class:`EditError`, nothing changed yet): a table without persons (``--no-identity``),
    an ID the run does not have, a merge of persons seen in one frame, two names for one merged person.
    """
    if "person_id" not in faces.columns:
        raise EditError("this run has no persons (made with --no-identity): nothing to merge, name or drop")
    known = sorted(int(p) for p in faces["person_id"].unique() if p >= 1)
    mentioned = [p for group in edits.merge for p in group] + [p for p, _ in edits.names] + list(edits.drop)
    unknown = [p for p in dict.fromkeys(mentioned) if p not in known]
    if unknown:
        have = label_list(known) if known else "none"
        raise EditError(f"no person {label_list(unknown)} in this run (its persons: {have})")
    new_of_old = {p: p for p in known}
    for group in edits.merge:
        keep = new_of_old[group[0]]
        for other in group[1:]:
            gone = new_of_old[other]
            if gone == keep:
                raise EditError(f"--merge {label_list(group)}: P{other} is already part of P{keep}")
            new_of_old = {old: keep if new == gone else new for old, new in new_of_old.items()}
    _check_no_shared_frames(faces, new_of_old)
    for p in edits.drop:
        new_of_old[p] = NO_PERSON
    return EditPlan(new_of_old, _final_names(faces, edits, new_of_old))


def _check_no_shared_frames(faces: pd.DataFrame, new_of_old: dict[int, int]) -> None:
    """Two faces in one frame cannot be one person: name the first frame where merged persons meet."""
    rows = faces.loc[faces["person_id"] >= 1, ["frame", "time_s", "person_id"]]
    rows = rows.assign(new=rows["person_id"].map(new_of_old))
    meeting = rows.groupby(["frame", "new"])["person_id"].transform("nunique") > 1
    if not meeting.any():
        return
    first = rows[meeting].sort_values(["frame", "new", "person_id"]).iloc[0]
    same = meeting & (rows["frame"] == first["frame"]) & (rows["new"] == first["new"])
    together = sorted(rows.loc[same, "person_id"].astype(int).unique())
    when = f" ({first['time_s']:.2f} s)" if np.isfinite(first["time_s"]) else ""
    raise EditError(
        f"{label_list(together)} are both seen in frame {int(first['frame'])}{when}: two faces in one frame cannot "
        "be one person"
    )


def _final_names(faces: pd.DataFrame, edits: PersonEdits, new_of_old: dict[int, int]) -> dict[int, str]:
    """Names after the edits: the run's (``--people``) carried to the person they went into, then ``--name``.

    A merge of two persons with different names from the run needs a ``--name`` for the merged one.
    """
    given = {new_of_old[p]: name for p, name in edits.names}
    names: dict[int, str] = {}
    if "person" in faces.columns:
        named = faces.loc[faces["person_id"] >= 1, ["person_id", "person"]].drop_duplicates("person_id")
        for old, name in named.itertuples(index=False):
            new = new_of_old.get(int(old), NO_PERSON)
            if new == NO_PERSON or not isinstance(name, str) or not name or new in given:
                continue
            if names.get(new, name) != name:
                raise EditError(
                    f"P{new} would be both {names[new]} and {name}; name the merged person with --name P{new}=NAME"
                )
            names[new] = name
    names.update(given)
    return {p: names[p] for p in sorted(names)}


# ------------------------------------------------------------------------------- the tables
def edited_faces(faces: pd.DataFrame, plan: EditPlan) -> pd.DataFrame:
    """The faces table with the new ``person_id`` (and ``person``: kept when the run had it, added with names)."""
    with_name = "person" in faces.columns or bool(plan.names)
    base = faces.drop(columns=[c for c in ("person_id", "person") if c in faces.columns])
    return add_persons(base, plan.person_of_track(faces), plan.names if with_name else None)


def edited_summary(summary: pd.DataFrame, plan: EditPlan) -> pd.DataFrame:
    """The per-track summary with each track's new person; every other number is the track's and stays."""
    out = summary.copy()
    if "person_id" in out.columns:
        out["person_id"] = out["person_id"].map(lambda p: plan.new_of_old.get(int(p), NO_PERSON)).astype(np.int64)
    return out


def edited_blinks(blinks: pd.DataFrame, plan: EditPlan) -> pd.DataFrame:
    """The blinks table with each blink's new person: a blink is found in one face track
    (:func:`fervid.behaviour.blinks.detect_blinks`), whoever the track belongs to, so only ``person_id`` changes."""
    return edited_summary(blinks, plan)


def edited_persons(
    faces: pd.DataFrame, old_persons: pd.DataFrame, plan: EditPlan, classes: Sequence[str], min_p_correct: float
) -> pd.DataFrame:  # fmt: skip
    """The persons table again from the edited faces table, with each person's ``visible_s`` exact.

    ``visible_s`` needs every processed frame's time, which a saved run does not keep; merged
    persons never share a frame (:func:`plan_edits`), so a merged person's time on screen is
    the sum of its parts' (``old_persons``), as the run measured them.
    """
    persons = summarize_persons(faces, classes, min_p_correct=min_p_correct)
    visible = old_persons.set_index("person_id")["visible_s"]
    persons["visible_s"] = [
        visible.reindex(plan.sources(int(p))).sum(min_count=1) for p in persons["person_id"]
    ]  # fmt: skip
    return persons
