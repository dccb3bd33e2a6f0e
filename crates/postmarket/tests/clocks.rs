//! Regulatory clock arithmetic with hand-computed due dates.

use medsec_postmarket::clock::{ClockBoard, Obligation};
use medsec_postmarket::incident::IncidentId;
use time::Duration;
use time::macros::datetime;

#[test]
fn ten_days_across_month_end() {
    // Jan 25 + 10 days: 6 days to Jan 31, 4 more -> Feb 4.
    assert_eq!(
        Obligation::MdrDeathOrSeriousDeterioration
            .due(datetime!(2026-01-25 14:15 UTC))
            .unwrap(),
        datetime!(2026-02-04 14:15 UTC)
    );
}

#[test]
fn thirty_days_across_year_end() {
    // Dec 15 + 30: 16 days to Dec 31, 14 more -> Jan 14.
    assert_eq!(
        Obligation::MdrCouldLeadIfRecurred
            .due(datetime!(2026-12-15 09:00 UTC))
            .unwrap(),
        datetime!(2027-01-14 09:00 UTC)
    );
}

#[test]
fn seventy_two_hours_across_year_end() {
    assert_eq!(
        Obligation::ForeignRiskNotice
            .due(datetime!(2026-12-30 20:00 UTC))
            .unwrap(),
        datetime!(2027-01-02 20:00 UTC)
    );
}

#[test]
fn leap_day_is_counted() {
    // 2028 is a leap year: Feb 25 + 10 = 4 days to Feb 29, 6 more -> Mar 6.
    assert_eq!(
        Obligation::MdrDeathOrSeriousDeterioration
            .due(datetime!(2028-02-25 10:00 UTC))
            .unwrap(),
        datetime!(2028-03-06 10:00 UTC)
    );
    // 2027 is not: Feb 25 + 10 = 3 days to Feb 28, 7 more -> Mar 7.
    assert_eq!(
        Obligation::MdrDeathOrSeriousDeterioration
            .due(datetime!(2027-02-25 10:00 UTC))
            .unwrap(),
        datetime!(2027-03-07 10:00 UTC)
    );
    // FDA 60 days from Jan 15 2028: 16 to Jan 31, 29 in Feb, 15 -> Mar 15.
    assert_eq!(
        Obligation::FdaFixValidated
            .due(datetime!(2028-01-15 08:00 UTC))
            .unwrap(),
        datetime!(2028-03-15 08:00 UTC)
    );
    // FDA 30 days from Feb 10 2028: 19 to Feb 29, 11 -> Mar 11.
    assert_eq!(
        Obligation::FdaCustomerNotification
            .due(datetime!(2028-02-10 08:00 UTC))
            .unwrap(),
        datetime!(2028-03-11 08:00 UTC)
    );
}

#[test]
fn dst_transition_with_local_offset() {
    // Awareness Saturday 2026-03-07 22:30 EST (-05:00), the evening before US DST starts
    // (2026-03-08 02:00 local). In UTC that is 2026-03-08 03:30; + 10 days = 2026-03-18 03:30Z,
    // which local clocks (now EDT, -04:00) show as 2026-03-17 23:30, not 22:30.
    let due = Obligation::MdrDeathOrSeriousDeterioration
        .due(datetime!(2026-03-07 22:30 -05:00))
        .unwrap();
    assert_eq!(due, datetime!(2026-03-18 03:30 UTC));
    assert_eq!(due.offset(), time::UtcOffset::UTC);
    assert_eq!(due, datetime!(2026-03-17 23:30 -04:00));
    // 72 hours across the same change: 2026-03-11 03:30Z.
    assert_eq!(
        Obligation::ForeignRiskNotice
            .due(datetime!(2026-03-07 22:30 -05:00))
            .unwrap(),
        datetime!(2026-03-11 03:30 UTC)
    );
}

#[test]
fn due_soon_and_overdue_listings() {
    let mut board = ClockBoard::new();
    let aware = datetime!(2026-05-01 12:00 UTC);
    board
        .start(IncidentId(1), Obligation::ForeignRiskNotice, aware)
        .unwrap(); // due 05-04 12:00
    board
        .start(
            IncidentId(1),
            Obligation::MdrDeathOrSeriousDeterioration,
            aware,
        )
        .unwrap(); // due 05-11 12:00
    board
        .start_fda_uncontrolled_risk(IncidentId(2), aware)
        .unwrap(); // 05-31, 06-30

    let now = datetime!(2026-05-03 12:00 UTC);
    let soon = board.due_soon(now, Duration::days(2));
    assert_eq!(soon.len(), 1);
    assert_eq!(soon[0].obligation, Obligation::ForeignRiskNotice);
    assert!(board.overdue(now).is_empty());

    // Exactly at the due instant: due, not overdue.
    let at_due = datetime!(2026-05-04 12:00 UTC);
    assert!(board.overdue(at_due).is_empty());
    assert_eq!(board.due_soon(at_due, Duration::ZERO).len(), 1);

    let later = datetime!(2026-06-01 00:00 UTC);
    let over: Vec<Obligation> = board.overdue(later).iter().map(|c| c.obligation).collect();
    assert_eq!(
        over,
        [
            Obligation::ForeignRiskNotice,
            Obligation::MdrDeathOrSeriousDeterioration,
            Obligation::FdaCustomerNotification,
        ]
    );
    board
        .mark_met(IncidentId(1), Obligation::ForeignRiskNotice, at_due)
        .unwrap();
    assert_eq!(board.overdue(later).len(), 2);
    assert_eq!(
        board.due_soon(later, Duration::days(30))[0].obligation,
        Obligation::FdaFixValidated
    );
}

#[test]
fn earlier_awareness_moves_the_clock_earlier() {
    let mut board = ClockBoard::new();
    let c = board
        .start(
            IncidentId(1),
            Obligation::ForeignRiskNotice,
            datetime!(2026-05-02 00:00 UTC),
        )
        .unwrap();
    assert_eq!(c.due, datetime!(2026-05-05 00:00 UTC));
    let c = board
        .start(
            IncidentId(1),
            Obligation::ForeignRiskNotice,
            datetime!(2026-05-01 00:00 +02:00),
        )
        .unwrap();
    assert_eq!(c.due, datetime!(2026-05-03 22:00 UTC));
    let c = board
        .start(
            IncidentId(1),
            Obligation::ForeignRiskNotice,
            datetime!(2026-06-01 00:00 UTC),
        )
        .unwrap();
    assert_eq!(c.due, datetime!(2026-05-03 22:00 UTC));
    assert_eq!(board.clocks().len(), 1);
}
