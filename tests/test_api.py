"""The public surface: what `import streamq` offers, and the error hierarchy."""

from __future__ import annotations

import importlib
import re
from importlib import resources
from pathlib import Path

import griffe

import streamq
from streamq import errors

PUBLIC = {
    "ConnectionFailed",
    "Consumer",
    "ConsumerInfo",
    "DeadLetter",
    "EncodeError",
    "EnqueueEvent",
    "Event",
    "EventType",
    "GroupInfo",
    "Handler",
    "HistoryPoint",
    "Hooks",
    "InvalidArgument",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobInUse",
    "JobInfo",
    "JobNotFound",
    "JobEvent",
    "JobRef",
    "JobState",
    "JobSummary",
    "NotReplicated",
    "PermissionDenied",
    "Queue",
    "QueueInUse",
    "QueueManager",
    "QueueStats",
    "ReclaimEvent",
    "RedisTimeout",
    "Retry",
    "RecurringInfo",
    "SettleEvent",
    "Step",
    "StreamqError",
    "Unrecoverable",
    "chain",
    "group",
}


def test_all_is_a_tuple_of_exactly_the_public_names() -> None:
    assert isinstance(streamq.__all__, tuple)
    assert set(streamq.__all__) == PUBLIC
    for name in streamq.__all__:
        assert hasattr(streamq, name), name


def test_package_is_typed() -> None:
    assert resources.files("streamq").joinpath("py.typed").is_file()


def test_errors_derive_from_one_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), streamq.StreamqError)
    assert issubclass(streamq.EncodeError, TypeError)
    assert issubclass(streamq.InvalidArgument, ValueError)
    assert issubclass(streamq.JobNotFound, LookupError)


def test_errors_carry_context() -> None:
    failed = streamq.JobFailed("j1", "ValueError: boom", queue="emails")
    assert (failed.job_id, failed.error, failed.queue) == ("j1", "ValueError: boom", "emails")
    assert "j1" in str(failed) and "boom" in str(failed)


# -- the API reference (docs/api.md) documents every parameter and field ----------------------

ROOT = Path(__file__).parent.parent
#: The modules whose ``__all__`` the API reference renders (mkdocstrings, through griffe).
DOCUMENTED_MODULES = ("streamq", "streamq.testing", "streamq.ops.otel")


def _names(docstring: str | None, name: str) -> bool:
    """Whether ``docstring`` names parameter ``name``: as an inline literal, alone or with a
    value (``name`` or ``name=...`` in double backquotes), or in a sphinx ``:param name:``."""
    escaped = re.escape(name)
    return bool(
        re.search(rf"``{escaped}(?:``|\s*=)", docstring or "")
        or re.search(rf":param(?:\s+[^:]+)?\s+{escaped}\s*:", docstring or "")
    )


def _target(member: griffe.Object | griffe.Alias) -> griffe.Object:
    """What ``member`` is: an imported name's (an alias's) definition, followed through."""
    return member.final_target if isinstance(member, griffe.Alias) else member


def _docstring(member: griffe.Object | griffe.Alias) -> str | None:
    return None if member.docstring is None else member.docstring.value


def _inherited_docstring(cls: griffe.Class, name: str) -> str | None:
    """The docstring of the nearest base class's ``name``: an override without a docstring of
    its own is documented by the method it overrides."""
    for base in cls.mro():
        if name in base.members and (text := _docstring(base.members[name])) is not None:
            return text
    return None


class _Survey:
    """What the API reference shows: every parameter and field looked at (``checked``), and
    those it shows with no word about them (``missing``), as ``Name.method: parameter``
    (``Name: parameter`` for a constructor's, ``Name: field x`` for a field)."""

    def __init__(self) -> None:
        self.checked: set[str] = set()
        self.missing: list[str] = []

    def look(self, shown_as: str, documented: bool) -> None:
        self.checked.add(shown_as)
        if not documented:
            self.missing.append(shown_as)

    def parameters(
        self,
        shown_as: str,
        function: griffe.Function,
        docstrings: list[str | None],
        fields: set[str] | None = None,
    ) -> None:
        """The parameters of ``function`` (bar self, cls, ``*args`` and ``**kwargs``): each
        named by one of ``docstrings``, or one of the documented ``fields``."""
        for parameter in function.parameters:
            if parameter.name in ("self", "cls") or parameter.kind in (
                griffe.ParameterKind.var_positional,
                griffe.ParameterKind.var_keyword,
            ):
                continue
            self.look(
                f"{shown_as}: {parameter.name}",
                parameter.name in (fields or set())
                or any(_names(text, parameter.name) for text in docstrings),
            )

    def cls(self, shown_as: str, cls: griffe.Class) -> None:
        # Fields: the annotated public attributes (a Struct's or dataclass's fields), each
        # shown only with an attribute docstring (a string literal after it; a ``#:`` comment
        # is not one).
        fields = set()
        for name, member in cls.members.items():
            attribute = _target(member)
            if (
                isinstance(attribute, griffe.Attribute)
                and not name.startswith("_")
                and "property" not in attribute.labels
                and attribute.annotation is not None
            ):
                self.look(f"{shown_as}: field {name}", attribute.docstring is not None)
                if attribute.docstring is not None:
                    fields.add(name)
        # The constructor, merged into the class's entry: its parameters named by the class's
        # docstring or ``__init__``'s, or (a dataclass's) documented as fields.
        if isinstance(init := cls.members.get("__init__"), griffe.Function):
            texts = [_docstring(cls), _docstring(init)]
            self.parameters(shown_as, init, texts, fields if "dataclass" in cls.labels else None)
        for name, member in cls.members.items():
            if not name.startswith("_") and isinstance(
                function := _target(member), griffe.Function
            ):
                text = _docstring(function) or _inherited_docstring(cls, name)
                self.parameters(f"{shown_as}.{name}", function, [text])


def survey_the_api_reference() -> _Survey:
    """Every name of :data:`DOCUMENTED_MODULES`, as mkdocstrings loads them (griffe, sphinx
    docstrings): functions, and classes with their constructor, public methods and fields."""
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)], docstring_parser=griffe.Parser.sphinx)
    package = loader.load("streamq")
    loader.resolve_aliases(implicit=False, external=None)
    survey = _Survey()
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        loaded = package if module_name == "streamq" else package[module_name[len("streamq.") :]]
        for name in module.__all__:
            target = _target(loaded[name])
            if isinstance(target, griffe.Class):
                survey.cls(name, target)
            elif isinstance(target, griffe.Function):
                survey.parameters(name, target, [_docstring(target)])
    return survey


def test_the_api_reference_documents_every_parameter_and_field() -> None:
    """The promise that public docstrings document every parameter (and every field of the
    records they return), for what docs/api.md renders."""
    survey = survey_the_api_reference()
    # The walk reaches constructors, methods, overrides, fields and functions of each module.
    assert {
        "QueueManager: url",
        "Queue.enqueue: priority",
        "JobInfo: field attempts",
        "Hooks.on_start: event",
        "make_job: job_id",
    } <= survey.checked
    missing = survey.missing
    assert not missing, f"{len(missing)} undocumented in the API reference:\n" + "\n".join(missing)
