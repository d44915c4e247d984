"""Scheduling rules for course runs and what an enrolment may hold."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.courses.domain.model import DEFAULT_COURSE_TYPES, Enrol, ScheduleRefused, ScheduleRun, check_schedule

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TYPES = {t.code: t for t in DEFAULT_COURSE_TYPES}


def run(course_type="klik-en-tik", *, days=7, capacity=None, teacher=None, sessions=None, minutes=None) -> ScheduleRun:
    """A run as its type prescribes (its number and length of sessions), unless told otherwise."""
    course = TYPES.get(course_type)
    start = NOW + timedelta(days=days)
    length = timedelta(minutes=minutes or (course.session_minutes if course else 120))
    return ScheduleRun(
        course_type=course_type,
        location="centrum",
        teacher=teacher,
        capacity=capacity,
        sessions=[
            {"starts_at": start + timedelta(days=i), "ends_at": start + timedelta(days=i) + length}
            for i in range(sessions or (course.sessions if course else 1))
        ],
    )


def test_capacity_defaults_to_the_course_type_and_never_exceeds_it():
    assert check_schedule(run(), TYPES["klik-en-tik"], now=NOW, teacher_certified=False) == 8
    assert check_schedule(run(capacity=5), TYPES["klik-en-tik"], now=NOW, teacher_certified=False) == 5
    with pytest.raises(ScheduleRefused) as refused:
        check_schedule(run(capacity=9), TYPES["klik-en-tik"], now=NOW, teacher_certified=False)
    assert refused.value.field == "capacity"
    assert check_schedule(run("doorvragen", capacity=16), TYPES["doorvragen"], now=NOW, teacher_certified=False) == 16


def test_runs_in_the_past_and_unknown_types_are_refused():
    with pytest.raises(ScheduleRefused) as past:
        check_schedule(run(days=-1), TYPES["klik-en-tik"], now=NOW, teacher_certified=False)
    assert past.value.field == "sessions"
    with pytest.raises(ScheduleRefused) as unknown:
        check_schedule(run("cooking"), None, now=NOW, teacher_certified=False)
    assert unknown.value.field == "course_type"


def test_digisterker_needs_a_certified_teacher():
    with pytest.raises(ScheduleRefused) as refused:
        check_schedule(run("digisterker", teacher="jan"), TYPES["digisterker"], now=NOW, teacher_certified=False)
    assert refused.value.field == "teacher"
    assert check_schedule(run("digisterker", teacher="jan"), TYPES["digisterker"], now=NOW, teacher_certified=True) == 8


def test_a_run_has_the_number_and_length_of_sessions_of_its_type():
    klik_en_tik = TYPES["klik-en-tik"]  # eight sessions of two hours
    with pytest.raises(ScheduleRefused) as one_session:
        check_schedule(run(sessions=1), klik_en_tik, now=NOW, teacher_certified=False)
    assert one_session.value.field == "sessions" and "8 session" in one_session.value.reason
    with pytest.raises(ScheduleRefused) as too_many:
        check_schedule(run("doorvragen", sessions=2), TYPES["doorvragen"], now=NOW, teacher_certified=False)
    assert too_many.value.field == "sessions"
    with pytest.raises(ScheduleRefused) as too_short:
        check_schedule(run(minutes=60), klik_en_tik, now=NOW, teacher_certified=False)
    assert too_short.value.field == "sessions" and "120 minutes" in too_short.value.reason
    assert check_schedule(run(), klik_en_tik, now=NOW, teacher_certified=False) == 8


def test_a_type_with_flexible_sessions_allows_runs_that_deviate():
    flexible = TYPES["klik-en-tik"].model_copy(update={"flexible_sessions": True})
    assert check_schedule(run(sessions=3, minutes=90), flexible, now=NOW, teacher_certified=False) == 8
    assert TYPES["klik-en-tik"].flexible_sessions is False, "strict unless the type says so"


def test_sessions_of_a_run_may_not_overlap_and_must_end_after_they_start():
    start = NOW + timedelta(days=3)
    with pytest.raises(ValidationError, match="overlap"):
        ScheduleRun(
            course_type="klik-en-tik",
            location="c",
            sessions=[
                {"starts_at": start, "ends_at": start + timedelta(hours=2)},
                {"starts_at": start + timedelta(hours=1), "ends_at": start + timedelta(hours=3)},
            ],
        )
    with pytest.raises(ValidationError):
        ScheduleRun(
            course_type="klik-en-tik",
            location="c",
            sessions=[{"starts_at": start, "ends_at": start}],
        )


def test_an_enrolment_needs_consent_and_exactly_one_contact_channel():
    assert Enrol(name="Mevr. P.", contact={"email": "p@example.nl"}, consent=True)
    for bad in (
        {"name": "P", "contact": {"email": "p@example.nl"}, "consent": False},
        {"name": "P", "contact": {}, "consent": True},
        {"name": "P", "contact": {"email": "p@example.nl", "phone": "0612345678"}, "consent": True},
        {"name": "P", "contact": {"phone": "0612345678"}, "consent": True, "bsn": "1"},
    ):
        with pytest.raises(ValidationError):
            Enrol.model_validate(bad)
