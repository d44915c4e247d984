"""The CourseRun aggregate on its own (no I/O): seats in arrival order, the FIFO waitlist, offers
and their window, the no-show policy, attendance and completion, and the facts it records."""

from datetime import UTC, datetime, timedelta

import pytest

from services.courses.domain.model import (
    DEFAULT_COURSE_TYPES,
    AlreadyEnrolled,
    CourseRun,
    Enrol,
    Invalid,
    LibraryReadiness,
    Location,
    NotFound,
    Refused,
    ScheduleRefused,
    ScheduleRun,
    Session,
    certificate,
    enrolment_id,
    schedule_run,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
TYPES = {t.code: t for t in DEFAULT_COURSE_TYPES}
START = NOW + timedelta(days=2)


def new_run(capacity: int = 2, course_type: str = "klik-en-tik", sessions: int = 8) -> CourseRun:
    return CourseRun(
        id="run-1",
        library="venlo",
        course_type=course_type,
        location="centrum",
        postcode="5911 AA",
        teacher=None,
        sessions=[
            Session(starts_at=START + timedelta(days=i), ends_at=START + timedelta(days=i, hours=2))
            for i in range(sessions)
        ],
        capacity=capacity,
        scheduled_at=NOW,
    )


def person(i: int, staff: str | None = None) -> Enrol:
    return Enrol(name=f"P{i}", contact={"email": f"p{i}@example.nl"}, consent=True, staff_member=staff)


def enrol(run: CourseRun, i: int, *, staff: str | None = None, now: datetime = NOW):
    who = person(i, staff)
    return run.enrol(enrolment_id(run.id, who), who, TYPES[run.course_type], now=now)


def facts(run: CourseRun) -> list[tuple[str, int | None]]:
    recorded = [(type(f).__name__, getattr(f, "position", None)) for f in run.events]
    run.events.clear()
    return recorded


def consistent(run: CourseRun) -> None:
    holders = [e for e in run.enrolments.values() if e.status in ("enrolled", "offered")]
    assert len(holders) == run.seats_taken <= run.capacity
    assert all(e.seat for e in holders) and len({e.seat for e in holders}) == len(holders)
    assert all(e.seat is None for e in run.enrolments.values() if e.status not in ("enrolled", "offered"))


def test_the_first_arrivals_take_the_seats_and_the_rest_wait_in_order():
    run = new_run(capacity=2)
    people = [enrol(run, i) for i in range(4)]
    assert [(e.position, e.status, e.seat) for e in people] == [
        (1, "enrolled", 1),
        (2, "enrolled", 2),
        (3, "waitlisted", None),
        (4, "waitlisted", None),
    ]
    assert facts(run) == [
        ("ParticipantEnrolled", 1),
        ("ParticipantEnrolled", 2),
        ("ParticipantWaitlisted", 3),
        ("ParticipantWaitlisted", 4),
    ]
    assert run.next_position == 4 and run.seats_free == 0
    consistent(run)


def test_the_same_person_twice_is_refused_without_using_an_arrival_number():
    run = new_run()
    enrol(run, 1)
    with pytest.raises(AlreadyEnrolled):
        enrol(run, 1)
    assert run.next_position == 1


def test_enrolment_is_refused_once_the_run_started_or_was_cancelled():
    run = new_run()
    with pytest.raises(Refused):
        enrol(run, 1, now=START)
    run.cancel(now=NOW)
    with pytest.raises(Refused):
        enrol(run, 2)


def test_staff_training_needs_the_staff_members_id():
    run = new_run(course_type="doorvragen", sessions=1)
    with pytest.raises(Invalid) as invalid:
        enrol(run, 1)
    assert invalid.value.field == "staff_member"
    assert enrol(run, 2, staff="mw-2").participant.staff_member == "mw-2"


def test_a_cancellation_offers_the_seat_to_the_first_waiting_with_a_window():
    run = new_run(capacity=2)
    a, _, c, d = [enrol(run, i) for i in range(4)]
    facts(run)
    run.cancel_enrolment(a.id, now=NOW, window=WINDOW)
    assert (a.status, a.seat) == ("cancelled", None)
    assert (c.status, c.offered_until, c.seat) == ("offered", NOW + WINDOW, 1)
    assert d.status == "waitlisted"
    assert facts(run) == [("EnrolmentCancelled", 1), ("SeatOffered", 3)]
    consistent(run)
    with pytest.raises(Refused):
        run.cancel_enrolment(a.id, now=NOW, window=WINDOW)
    with pytest.raises(NotFound):
        run.cancel_enrolment("run-1:nobody", now=NOW, window=WINDOW)


def test_cancelling_a_waitlist_place_offers_nothing():
    run = new_run(capacity=1)
    _, b, c = [enrol(run, i) for i in range(3)]
    facts(run)
    run.cancel_enrolment(b.id, now=NOW, window=WINDOW)
    assert facts(run) == [("EnrolmentCancelled", 2)] and c.status == "waitlisted"


def test_an_offer_is_accepted_within_its_window_or_lapses_to_the_next():
    run = new_run(capacity=1)
    a, b, c = [enrol(run, i) for i in range(3)]
    run.cancel_enrolment(a.id, now=NOW, window=WINDOW)
    facts(run)
    with pytest.raises(Refused):
        run.accept_offer(c.id, now=NOW)  # not offered
    assert run.expire_offers(now=NOW + WINDOW - timedelta(seconds=1), window=WINDOW) == 0
    assert run.expire_offers(now=NOW + WINDOW, window=WINDOW) == 1
    assert (b.status, c.status) == ("offer_expired", "offered")
    assert c.offered_until == NOW + 2 * WINDOW
    assert facts(run) == [("SeatOfferExpired", 2), ("SeatOffered", 3)]
    with pytest.raises(Refused):
        run.accept_offer(b.id, now=NOW + WINDOW)
    assert run.accept_offer(c.id, now=NOW + WINDOW).status == "enrolled"
    assert facts(run) == [("ParticipantEnrolled", 3)], "an accepted offer is an enrolment: reporting counts it"
    assert run.expire_offers(now=NOW + 3 * WINDOW, window=WINDOW) == 0, "an accepted offer does not lapse"
    consistent(run)


def test_raising_capacity_offers_seats_and_it_cannot_drop_below_the_seats_taken():
    run = new_run(capacity=1)
    _, b, c = [enrol(run, i) for i in range(3)]
    facts(run)
    with pytest.raises(Invalid):
        run.change_capacity(9, TYPES["klik-en-tik"], now=NOW, window=WINDOW)
    run.change_capacity(3, TYPES["klik-en-tik"], now=NOW, window=WINDOW)
    assert (b.status, c.status) == ("offered", "offered")
    assert facts(run) == [("CourseRunCapacityChanged", None), ("SeatOffered", 2), ("SeatOffered", 3)]
    with pytest.raises(Invalid):
        run.change_capacity(2, TYPES["klik-en-tik"], now=NOW, window=WINDOW)
    consistent(run)


def test_a_cancelled_run_cancels_every_open_enrolment():
    run = new_run(capacity=1)
    a, b = [enrol(run, i) for i in range(2)]
    facts(run)
    run.cancel(now=NOW)
    assert (run.status, a.status, b.status, run.seats_taken) == ("cancelled", "cancelled", "cancelled", 0)
    assert [type(f).__name__ for f in run.events] == ["CourseRunCancelled", "EnrolmentCancelled", "EnrolmentCancelled"]
    assert {f.reason for f in run.events[1:]} == {"run_cancelled"}
    with pytest.raises(Refused):
        run.cancel(now=NOW)


def test_a_no_show_at_the_first_session_loses_the_seat_to_the_waitlist():
    run = new_run(capacity=2)
    came, away, waiting = [enrol(run, i) for i in range(3)]
    facts(run)
    run.record_attendance(1, [came.id], TYPES["klik-en-tik"], now=START, window=WINDOW, no_show_frees_seat=True)
    assert (away.status, waiting.status) == ("no_show", "offered")
    assert facts(run) == [("AttendanceRecorded", None), ("EnrolmentCancelled", 2), ("SeatOffered", 3)]
    consistent(run)


def test_without_the_no_show_policy_the_seat_stays():
    run = new_run(capacity=2)
    came, away, _ = [enrol(run, i) for i in range(3)]
    run.record_attendance(1, [came.id], TYPES["klik-en-tik"], now=START, window=WINDOW, no_show_frees_seat=False)
    assert away.status == "enrolled"


def test_attendance_completes_the_course_once_and_names_only_enrolled_participants():
    run = new_run(capacity=2)
    a, b = [enrol(run, i) for i in range(2)]
    facts(run)
    course = TYPES["klik-en-tik"]
    later = START + timedelta(days=30)
    with pytest.raises(Invalid) as early:
        run.record_attendance(1, [a.id], course, now=NOW, window=WINDOW, no_show_frees_seat=True)
    assert early.value.field == "session"
    with pytest.raises(Invalid) as unknown:
        run.record_attendance(1, ["run-1:x"], course, now=later, window=WINDOW, no_show_frees_seat=True)
    assert unknown.value.field == "present"
    done = []
    for session in range(1, 9):
        done += run.record_attendance(session, [a.id, b.id], course, now=later, window=WINDOW, no_show_frees_seat=True)
    assert done == [a, b], "completed at the 6th session, once"
    assert a.attended == set(range(1, 9)) and a.completed_at == later
    completions = [f for f in run.events if type(f).__name__ == "CourseCompleted"]
    assert [(f.enrolment_id, f.sessions_attended) for f in completions] == [(a.id, 6), (b.id, 6)]
    record = certificate(run, a, course)
    assert record["participant"] == "P0" and record["sessions_attended"] == 8 and record["course"] == "Klik & Tik"


def test_a_certificate_only_for_a_completed_course_with_its_participant_known():
    run = new_run(capacity=1, course_type="klik-en-tik-veilig-online", sessions=1)
    a = enrol(run, 1)
    with pytest.raises(Refused):
        certificate(run, a, TYPES[run.course_type])
    run.record_attendance(1, [a.id], TYPES[run.course_type], now=START, window=WINDOW, no_show_frees_seat=True)
    assert certificate(run, a, TYPES[run.course_type])["sessions"] == [START.date().isoformat()]
    a.participant, a.personal_data_erased_at = a.participant.erased(), NOW
    with pytest.raises(Refused, match="erased"):
        certificate(run, a, TYPES[run.course_type])


def test_staff_training_completion_records_the_staff_member_and_readiness_counts():
    run = new_run(capacity=4, course_type="doorvragen", sessions=1)
    staff = [enrol(run, i, staff=f"mw-{i}") for i in range(2)]
    facts(run)
    done = run.record_attendance(
        1, [s.id for s in staff], TYPES["doorvragen"], now=START, window=WINDOW, no_show_frees_seat=True
    )
    assert [type(f).__name__ for f in run.events][1:] == ["CourseCompleted", "StaffTrainingCompleted"] * 2
    readiness = LibraryReadiness("venlo", {"doorvragen": {"mw-0"}})
    for e in done:
        readiness.staff_trained("doorvragen", e.participant.staff_member, at=START)
    assert [f.trained_staff for f in readiness.events] == [{"doorvragen": 1}, {"doorvragen": 2}]


def test_scheduling_checks_the_location_and_the_teachers_other_sessions():
    cmd = ScheduleRun(
        course_type="klik-en-tik-veilig-online",
        location="centrum",
        teacher="jan",
        sessions=[{"starts_at": START, "ends_at": START + timedelta(hours=2)}],
    )
    here = Location(library="venlo", code="centrum", postcode="5911 AA")
    course = TYPES["klik-en-tik-veilig-online"]
    common = dict(run_id="r", library="venlo", course=course, teacher_certified=False, now=NOW)
    with pytest.raises(ScheduleRefused) as nowhere:
        schedule_run(cmd, location=None, teacher_sessions=[], **common)
    assert nowhere.value.field == "location"
    busy = [Session(starts_at=START + timedelta(hours=1), ends_at=START + timedelta(hours=3))]
    with pytest.raises(ScheduleRefused) as clash:
        schedule_run(cmd, location=here, teacher_sessions=busy, **common)
    assert clash.value.field == "teacher"
    run = schedule_run(cmd, location=here, teacher_sessions=[], **common)
    assert (run.postcode, run.capacity, run.status) == ("5911 AA", 8, "scheduled")
    (fact,) = run.events
    assert (type(fact).__name__, fact.postcode, fact.sessions, fact.first_session_at) == (
        "CourseRunScheduled",
        "5911 AA",
        1,
        START,
    )
