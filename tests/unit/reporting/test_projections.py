"""Reporting's projections: rows as on the registration form, counters by dimension, how changes
to one row combine (whatever the batch boundaries), suppression."""

from datetime import UTC, date, datetime, timedelta

from services.reporting.domain.projections import (
    Changes,
    EnrolmentState,
    Increment,
    Location,
    Payment,
    QuestionOutcome,
    QuestionRow,
    ReferralChange,
    RunChange,
    SubsidyChange,
    agency_themes,
    changes_of,
    help_request_increments,
    question_rows,
)
from shared.events import catalog
from shared.events.catalog import HelpRequested, QuestionFacts
from shared.outbox import EventFactory

VISIT = HelpRequested(
    help_request_id="hr-1",
    library="zeeland",
    location="middelburg",
    channel="phone",
    questions=[
        QuestionFacts(index=0, category="digital_government", theme="digid", subtheme="app"),
        QuestionFacts(index=1, category="digital_government", theme="toeslagen", subtheme="huurtoeslag"),
    ],
    help_given=["informed", "coached"],
    registered_at=datetime(2026, 11, 3, 10, 0, tzinfo=UTC),
)
FACTORY = EventFactory(service="test", oin="00000001003214345000", base_url="http://test")
T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def event(data):
    return FACTORY.create(data, correlation_id=None).event, data


def referral_status(sequence: int, status: str, at: datetime = T0):
    return event(
        catalog.ReferralStatusChanged(
            referral_id="ref-1",
            help_request_id="hr-1",
            question_index=0,
            agency="uwv",
            library="zeeland",
            status=status,
            changed_at=at,
            sequence=sequence,
        )
    )


def test_one_row_per_question_with_the_forms_columns():
    rows = question_rows(VISIT)
    assert [(r.help_request_id, r.question, r.theme) for r in rows] == [("hr-1", 1, "digid"), ("hr-1", 2, "toeslagen")]
    assert rows[0].date == date(2026, 11, 3) and rows[0].help_given == "informed;coached"
    assert rows[0].duration_minutes is None and rows[0].location == "middelburg"


def test_one_visit_counter_and_one_question_counter_per_question():
    increments = help_request_increments(VISIT)
    assert [i.measure for i in increments] == ["visits", "questions", "questions", "help_given", "help_given"]
    dimensions = (("month", "2026-11"), ("library", "zeeland"), ("location", "middelburg"), ("channel", "phone"))
    dimensions += (("category", "digital_government"), ("theme", "digid"), ("subtheme", "app"))
    assert increments[1].key == ("questions", dimensions)
    assert len({i.key for i in increments}) == 5


def test_changes_to_one_counter_add_up():
    changes = changes_of([event(VISIT), event(VISIT.model_copy(update={"help_request_id": "hr-2"}))])
    visits = [i for i in changes.of(Increment) if i.measure == "visits"]
    assert [i.amount for i in visits] == [2]
    assert len(changes.of(QuestionRow)) == 4, "two requests of two questions"


def test_a_routed_request_gives_each_question_its_outcome_and_organisation():
    routed = catalog.HelpRequestRouted(
        help_request_id="hr-1",
        library="zeeland",
        decisions=[
            catalog.QuestionDecision(question_index=0, outcome="informed"),
            catalog.QuestionDecision(question_index=1, outcome="referred", organisation="belastingdienst"),
        ],
    )
    changes = changes_of([event(routed)])
    assert changes.of(QuestionOutcome) == [
        QuestionOutcome("hr-1", 1, "informed", ""),
        QuestionOutcome("hr-1", 2, "referred", "belastingdienst"),
    ]
    assert {dict(i.dimensions)["organisation"] for i in changes.of(Increment)} == {"", "belastingdienst"}


def test_a_referral_keeps_the_status_with_the_highest_sequence_whatever_the_order():
    events = [referral_status(2, "accepted", T0 + timedelta(hours=5)), referral_status(3, "got_help")]
    for ordered in (events, events[::-1]):
        [referral] = changes_of(ordered).of(ReferralChange)
        assert (referral.status, referral.sequence) == ("got_help", 3)
        assert referral.accepted_at == T0 + timedelta(hours=5)


def test_a_referral_sent_after_its_first_status_keeps_both_and_overdue_sticks():
    sent = catalog.ReferredToAgency(
        referral_id="ref-1", help_request_id="hr-1", agency="uwv", library="zeeland", theme="werk"
    )
    overdue = catalog.ReferralOverdue(
        referral_id="ref-1",
        help_request_id="hr-1",
        question_index=0,
        agency="uwv",
        library="zeeland",
        status="sent",
        due_at=T0,
        detected_at=T0,
    )
    sent_event = event(sent)
    [referral] = changes_of([referral_status(1, "accepted"), event(overdue), sent_event]).of(ReferralChange)
    assert referral.status == "accepted" and referral.overdue and referral.theme == "werk"
    assert referral.sent_at == sent_event[0].time


def test_a_location_opened_when_first_registered():
    first, later = Location("zeeland", "centrum", T0), Location("zeeland", "centrum", T0 + timedelta(days=30))
    elsewhere = Location("venlo", "centrum", T0 + timedelta(days=60))  # the same code, another library
    changes = Changes()
    changes.add(first, later, elsewhere)
    assert changes.of(Location) == [elsewhere, first]


def scheduled_run(*, capacity: int, sessions: int) -> catalog.CourseRunScheduled:
    return catalog.CourseRunScheduled(
        run_id="run-1",
        library="zeeland",
        course_type="klik-en-tik",
        location="middelburg",
        postcode="4331 AA",
        capacity=capacity,
        first_session_at=T0,
        sessions=sessions,
    )


def test_course_runs_keep_their_facts_when_cancelled_and_enrolments_their_latest_state():
    scheduled = scheduled_run(capacity=8, sessions=3)
    facts = {"run_id": "run-1", "library": "zeeland", "course_type": "klik-en-tik", "enrolment_id": "e-1", "at": T0}
    enrolled = catalog.ParticipantEnrolled(**facts, position=1)
    completed = catalog.CourseCompleted(**facts, position=1, sessions_attended=3)
    cancelled = catalog.CourseRunCancelled(run_id="run-1", library="zeeland", course_type="klik-en-tik", at=T0)
    changes = changes_of([event(scheduled), event(enrolled), event(completed), event(cancelled)])
    assert changes.of(RunChange) == [RunChange("run-1", "zeeland", "klik-en-tik", 8, T0, "cancelled")]
    assert changes.of(EnrolmentState) == [EnrolmentState("run-1", "e-1", "completed")]


def test_subsidy_amounts_per_application_and_a_repeated_tranche_is_paid_once():
    facts = {"application_id": "app-1", "scheme": "ido-2026", "library": "zeeland"}
    applied = catalog.SubsidyApplied(**facts, requested_cents=500, ido_opening_date=date(2026, 1, 1), applied_at=T0)
    granted = catalog.SubsidyGranted(**facts, granted_cents=400, partial=True, reason="deels", decided_at=T0)
    paid = catalog.SubsidyPaid(**facts, tranche="advance", amount_cents=200, paid_at=T0)
    changes = changes_of([event(applied), event(granted), event(paid), event(paid)])
    assert changes.of(SubsidyChange) == [SubsidyChange("app-1", "ido-2026", "zeeland", 500, 400, None, "granted")]
    assert changes.of(Payment) == [Payment("app-1", "advance", 200)]


def test_folding_in_batches_gives_the_same_rows_as_folding_at_once():
    """A rebuild folds a batch, the database combines it with the rows of earlier batches: the
    combination must not depend on where the batches end."""
    events = [event(VISIT), referral_status(2, "accepted"), referral_status(1, "sent"), event(VISIT)]
    events += [referral_status(4, "got_help"), referral_status(3, "needs_client_action")]
    at_once = changes_of(events)
    for cut in range(1, len(events)):
        first, rest = changes_of(events[:cut]), changes_of(events[cut:])
        combined = Changes()
        for kind in (Increment, QuestionRow, ReferralChange):
            combined.add(*first.of(kind), *rest.of(kind))
            assert combined.of(kind) == at_once.of(kind), (cut, kind.__name__)


def test_rows_come_out_in_key_order():
    changes = Changes()
    changes.add(Location("x", "b", T0), Location("x", "a", T0), Location("w", "c", T0))
    assert [loc.key for loc in changes.of(Location)] == [("w", "c"), ("x", "a"), ("x", "b")]


def test_an_agencys_domain_is_the_themes_that_go_to_it():
    assert agency_themes("belastingdienst") == {"belastingen", "toeslagen"}
    assert agency_themes("cjib") == {"verkeer"} and "digid" not in agency_themes("uwv")


def test_a_changed_capacity_changes_the_runs_seats_and_keeps_its_other_facts():
    scheduled = scheduled_run(capacity=4, sessions=8)
    raised = catalog.CourseRunCapacityChanged(
        run_id="run-1", library="zeeland", course_type="klik-en-tik", capacity=6, at=T0
    )
    changes = changes_of([event(scheduled), event(raised)])
    assert changes.of(RunChange) == [RunChange("run-1", "zeeland", "klik-en-tik", 6, T0, "scheduled")]
