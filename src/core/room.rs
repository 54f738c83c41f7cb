//! The rules of a video room. Pure: no async, no I/O, no clock (time comes
//! in as milliseconds), no serde.
//!
//! - **Who may join** ([`check_join`]): the checks in the order the issue gives, each with
//!   its own refusal, the per-address lock after too many wrong codes or passwords
//!   ([`is_locked`], [`count_wrong`]) and the room's lock after too many from all
//!   addresses together ([`is_locked_for_all`]), both until the next invitation.
//! - **Who is in the room** ([`LiveRoom`]): two seats, the room's agent and one visitor
//!   (the customer, or one guest). A seat is kept while its holder's connection is away
//!   (the grace period) and freed when they are gone or leave ([`LiveRoom::leave`]);
//!   leaving is not ending: the room stays open and anyone admitted may come back. Only
//!   the host (the agent's seat) ends the room for everyone ([`LiveRoom::end_by`]). A
//!   visitor seat taken by another admission than the one that held it last is a change
//!   of hands ([`Seated::changed_hands`]), which the agent is told of. The agent is the *impolite* peer of
//!   perfect negotiation, the visitor the *polite* one: fixed by seat, so it never
//!   changes across reconnects and both sides always disagree as the pattern needs.
//! - **The visitor seat across joins** ([`SeatHold`]): one admission at a time; a join
//!   reserves it for its token's lifetime ([`reserve_seat`]), refused while another
//!   admission is live in it or holds an unexpired reservation ([`seat_held_by_other`]);
//!   freed when its holder is gone ([`release_seat`]).
//! - **The call** ([`Call`]): idle → ringing (one side started) → active (the other
//!   accepted) → idle (either hung up, or a side left or was gone). A side away within
//!   the grace period keeps the call: coming back, both sides negotiate afresh. Signalling (offers,
//!   answers, ICE candidates) is allowed only in an active call and goes to the other
//!   seat only, never back to its sender.
//! - **The call's accounting**: its length from the acceptance, the time both sides
//!   reported a connected peer connection, the time the visitor's camera was on. Built
//!   from state changes inside the call, so neither can exceed the length.
//!
//! Every method either refuses with the state untouched or applies the event fully.

pub type Millis = i64;

/// Wrong codes or passwords given from one client address. (The store keeps a room's
/// list of these; how it is written is the store's business, `store::rooms`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongAttempts {
    /// The client address as `http::access::ClientIp::key` gives it (IPv6 by /64).
    pub address: String,
    pub count: u32,
}

/// Client addresses a room remembers wrong attempts for, at most; past it the oldest
/// is forgotten (a room is short-lived; 1,000 addresses is already an attack).
pub const MAX_TRACKED_ADDRESSES: usize = 1_000;

// ---------- joining ----------

/// What the hub found out about a join request (the adapter verifies hashes, which is
/// slow, and hands the verdicts here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinFacts {
    /// The visitor seat is held by another admission ([`seat_held_by_other`]).
    pub full: bool,
    /// No such room, or it ended.
    pub ended: bool,
    /// This address gave too many wrong codes or passwords.
    pub locked: bool,
    /// All addresses together gave too many since the last invitation ([`is_locked_for_all`]).
    pub locked_for_all: bool,
    pub how: JoinBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinBy {
    /// With the access code of an invitation (valid: matches, current and unexpired).
    Code {
        valid: bool,
        guest_room: bool,
        has_name: bool,
        has_contact: bool,
    },
    /// A customer room with the password and the identity the room names: its phone
    /// number and/or email address (each `_ok` is false when the room names it and the
    /// join gave another, or none; a room naming neither admits no one this way).
    Customer {
        phone_ok: bool,
        email_ok: bool,
        password_ok: bool,
    },
    /// A guest room with name, password and an email or phone.
    Guest {
        has_name: bool,
        has_contact: bool,
        password_ok: bool,
    },
}

/// Why a join is refused; the adapter turns each into its code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// "already two people"
    Full,
    /// "the meeting has ended"
    Ended,
    /// Too many wrong attempts from this address.
    Locked,
    /// Too many wrong attempts on this room from all addresses together.
    LockedForAll,
    MissingName,
    MissingContact,
    WrongCode,
    /// "phone number is incorrect"
    WrongPhone,
    /// "email address is incorrect"
    WrongEmail,
    /// "password is incorrect"
    WrongPassword,
}

impl JoinRefusal {
    /// Does this refusal count as a wrong attempt towards the lock?
    pub fn counts_as_wrong(self) -> bool {
        matches!(
            self,
            Self::WrongCode | Self::WrongPhone | Self::WrongEmail | Self::WrongPassword
        )
    }
}

/// The join checks, in order: full, ended, locked (for this address, then for all), then
/// the credentials.
pub fn check_join(facts: &JoinFacts) -> Result<(), JoinRefusal> {
    // An ended room is ended whoever held its seat: a join sent as it ends is told so.
    if facts.ended {
        return Err(JoinRefusal::Ended);
    }
    if facts.full {
        return Err(JoinRefusal::Full);
    }
    if facts.locked {
        return Err(JoinRefusal::Locked);
    }
    if facts.locked_for_all {
        return Err(JoinRefusal::LockedForAll);
    }
    match facts.how {
        JoinBy::Code {
            valid,
            guest_room,
            has_name,
            has_contact,
        } => {
            if guest_room && !has_name {
                return Err(JoinRefusal::MissingName);
            }
            if guest_room && !has_contact {
                return Err(JoinRefusal::MissingContact);
            }
            if !valid {
                return Err(JoinRefusal::WrongCode);
            }
        }
        JoinBy::Customer {
            phone_ok,
            email_ok,
            password_ok,
        } => {
            if !phone_ok {
                return Err(JoinRefusal::WrongPhone);
            }
            if !email_ok {
                return Err(JoinRefusal::WrongEmail);
            }
            if !password_ok {
                return Err(JoinRefusal::WrongPassword);
            }
        }
        JoinBy::Guest {
            has_name,
            has_contact,
            password_ok,
        } => {
            if !has_name {
                return Err(JoinRefusal::MissingName);
            }
            if !has_contact {
                return Err(JoinRefusal::MissingContact);
            }
            if !password_ok {
                return Err(JoinRefusal::WrongPassword);
            }
        }
    }
    Ok(())
}

/// Has `address` given `max` or more wrong codes or passwords?
pub fn is_locked(attempts: &[WrongAttempts], address: &str, max: u32) -> bool {
    attempts.iter().any(|a| a.address == address && a.count >= max)
}

/// Have all addresses together given `max` or more wrong codes or passwords (since the
/// last invitation, which clears the attempts)? The sum is exact up to the lock: an
/// address is forgotten only past [`MAX_TRACKED_ADDRESSES`] addresses, which hold at least
/// that many attempts, and `max` is at most that (`ROOM_MAX_FAILED_JOINS` ≤ 1,000); once
/// locked, nothing more is counted (the lock is checked before the credentials).
pub fn is_locked_for_all(attempts: &[WrongAttempts], max: u32) -> bool {
    attempts.iter().map(|a| u64::from(a.count)).sum::<u64>() >= u64::from(max)
}

/// Takes back one attempt counted for `address` (it proved right): the join counts every
/// attempt before checking it, so parallel guesses cannot all pass the lock.
pub fn refund_wrong(attempts: &mut Vec<WrongAttempts>, address: &str) {
    if let Some(i) = attempts.iter().position(|a| a.address == address) {
        attempts[i].count = attempts[i].count.saturating_sub(1);
        if attempts[i].count == 0 {
            attempts.remove(i);
        }
    }
}

/// Counts one wrong attempt from `address`, forgetting the oldest address past
/// [`MAX_TRACKED_ADDRESSES`].
pub fn count_wrong(attempts: &mut Vec<WrongAttempts>, address: &str) {
    if let Some(a) = attempts.iter_mut().find(|a| a.address == address) {
        a.count = a.count.saturating_add(1);
        return;
    }
    if attempts.len() >= MAX_TRACKED_ADDRESSES {
        attempts.remove(0);
    }
    attempts.push(WrongAttempts {
        address: address.to_string(),
        count: 1,
    });
}

// ---------- the visitor seat across joins ----------

/// The visitor seat reserved for one admission (one successful join, one opaque person
/// id in its room token) until its token expires. Kept in the stored room, so the
/// reservation holds on every node; the live room holds the seat once they connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatHold {
    /// The admission's person id (the room token's `sub`).
    pub admission: String,
    /// Until when, in milliseconds: the expiry of the token it was given for.
    pub until: Millis,
}

/// Is the visitor seat held by anyone other than `admission` at `now`: a live holder
/// (connected, or away within the grace period), or another admission's unexpired
/// reservation? A person is never refused their own seat.
pub fn seat_held_by_other(hold: Option<&SeatHold>, live_holder: Option<&str>, admission: &str, now: Millis) -> bool {
    live_holder.is_some_and(|p| p != admission) || hold.is_some_and(|h| h.admission != admission && h.until > now)
}

/// Reserves the visitor seat for `admission` until `until`, unless someone else holds
/// it ([`seat_held_by_other`]); the seat stays untouched then. A reservation is never
/// shortened: a reconnect with an older token keeps the later expiry.
pub fn reserve_seat(
    hold: &mut Option<SeatHold>,
    live_holder: Option<&str>,
    admission: &str,
    until: Millis,
    now: Millis,
) -> Result<(), Refusal> {
    if seat_held_by_other(hold.as_ref(), live_holder, admission, now) {
        return Err(Refusal::Full);
    }
    let until = match hold {
        Some(h) if h.admission == admission => h.until.max(until),
        _ => until,
    };
    *hold = Some(SeatHold {
        admission: admission.to_string(),
        until,
    });
    Ok(())
}

/// Frees the reservation when `admission` holds it: they were gone past the grace
/// period (or left). Another admission's reservation stays.
pub fn release_seat(hold: &mut Option<SeatHold>, admission: &str) {
    if hold.as_ref().is_some_and(|h| h.admission == admission) {
        *hold = None;
    }
}

// ---------- how long a room stays open ----------

/// Is a room with this closing time still open to joins at `now`? A room without one
/// (the agent's own rooms) stays open until its host ends it. A member already in the
/// room at the closing time is not put out: the call in progress goes on.
pub fn open_at(open_until: Option<Millis>, now: Millis) -> bool {
    open_until.is_none_or(|until| now <= until)
}

/// When an appointment's room closes: at the slot's end plus the grace, so that anyone
/// who leaves or drops out during the slot can come back until then.
pub fn appointment_room_closes_at(slot_end: Millis, grace_ms: Millis) -> Millis {
    slot_end.saturating_add(grace_ms)
}

/// Whether a booked appointment (`start`..`end`) may be started at `now`: from `window`
/// before its start until `window` after it or until its room would close (`grace` after
/// its end), whichever is later. A representative running late still starts it during the
/// slot; the same rule marks it `startable` in their list and lets them back into its room.
pub fn appointment_startable(start: Millis, end: Millis, window: Millis, grace: Millis, now: Millis) -> bool {
    let last = start.saturating_add(window).max(appointment_room_closes_at(end, grace));
    (start.saturating_sub(window)..=last).contains(&now)
}

// ---------- the live room ----------

/// The two places in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Seat {
    /// The room's agent: the impolite peer.
    Agent,
    /// The customer or guest: the polite peer.
    Visitor,
}

impl Seat {
    pub fn other(self) -> Seat {
        match self {
            Seat::Agent => Seat::Visitor,
            Seat::Visitor => Seat::Agent,
        }
    }

    /// Perfect negotiation's role: the polite peer yields when offers collide.
    pub fn polite(self) -> bool {
        self == Seat::Visitor
    }
}

/// Someone holding a seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub person: String,
    /// Connected now; false while away within the grace period.
    pub here: bool,
    /// Their last report: peer connection connected, camera on.
    pub connected: bool,
    pub camera: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Idle,
    Ringing { caller: Seat },
    Active(Accounting),
}

/// Time counted in an active call: totals so far and when the running stretches began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounting {
    pub accepted_at: Millis,
    pub connected_ms: i64,
    pub connected_since: Option<Millis>,
    pub camera_ms: i64,
    pub camera_since: Option<Millis>,
}

/// A call that ended, as it goes into the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSummary {
    pub started_at: Millis,
    pub length_ms: i64,
    /// Both sides connected; never more than `length_ms`.
    pub connected_ms: i64,
    /// The visitor's camera on; never more than `length_ms`.
    pub camera_ms: i64,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// A side hung up (or cancelled its ringing, or rejected).
    HungUp(Seat),
    Rejected(Seat),
    /// The host ended the room (or the hub stopped).
    RoomEnded,
    /// A side left the room (it stays open).
    Left(Seat),
    /// A side did not come back within the grace period.
    Gone(Seat),
}

/// What an event did to a call that was ringing or active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub why: CallEnd,
    /// Only for a call that had been accepted.
    pub summary: Option<CallSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The room has ended: nothing more happens in it.
    RoomEnded,
    /// The seat is someone else's.
    Full,
    /// The other side is not in the room (or away).
    PeerAbsent,
    /// A call is ringing or active already.
    CallInProgress,
    /// No call is active (signalling, reports) or ringing (hang up).
    NoCall,
    /// Nothing rings for you (accept, reject): no call, or you are the caller.
    NotRinging,
    /// No one holds this seat.
    NotInRoom,
    /// Only the host (the agent's seat) ends the room for everyone.
    NotHost,
}

/// How a join into a seat went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seated {
    /// The same person was connected already: their old connection is replaced.
    pub replaced: bool,
    /// They were away and are back within the grace period.
    pub back: bool,
    /// The visitor seat was free and another admission than the one that held it last
    /// takes it: the seat changed hands.
    pub changed_hands: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRoom {
    pub agent: Option<Holder>,
    pub visitor: Option<Holder>,
    pub call: Call,
    pub ended: bool,
    /// The admission that held the visitor seat last (kept after they leave or are
    /// gone), to tell a change of hands from the same person coming back.
    pub last_visitor: Option<String>,
}

impl Default for LiveRoom {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveRoom {
    pub fn new() -> Self {
        Self {
            agent: None,
            visitor: None,
            call: Call::Idle,
            ended: false,
            last_visitor: None,
        }
    }

    pub fn holder(&self, seat: Seat) -> Option<&Holder> {
        match seat {
            Seat::Agent => self.agent.as_ref(),
            Seat::Visitor => self.visitor.as_ref(),
        }
    }

    fn holder_mut(&mut self, seat: Seat) -> Option<&mut Holder> {
        match seat {
            Seat::Agent => self.agent.as_mut(),
            Seat::Visitor => self.visitor.as_mut(),
        }
    }

    fn slot(&mut self, seat: Seat) -> &mut Option<Holder> {
        match seat {
            Seat::Agent => &mut self.agent,
            Seat::Visitor => &mut self.visitor,
        }
    }

    /// Is `seat` held by someone other than `person`? (The join check's "full".)
    pub fn taken_by_other(&self, seat: Seat, person: &str) -> bool {
        self.holder(seat).is_some_and(|h| h.person != person)
    }

    fn present(&self, seat: Seat) -> bool {
        self.holder(seat).is_some_and(|h| h.here)
    }

    /// `person` connects into `seat`.
    pub fn join(&mut self, seat: Seat, person: &str) -> Result<Seated, Refusal> {
        if self.ended {
            return Err(Refusal::RoomEnded);
        }
        if self.taken_by_other(seat, person) {
            return Err(Refusal::Full);
        }
        let changed_hands = seat == Seat::Visitor
            && self.visitor.is_none()
            && self.last_visitor.as_deref().is_some_and(|p| p != person);
        if seat == Seat::Visitor {
            self.last_visitor = Some(person.to_string());
        }
        let slot = self.slot(seat);
        let seated = match slot {
            Some(h) => {
                let seated = Seated {
                    replaced: h.here,
                    back: !h.here,
                    changed_hands,
                };
                h.here = true;
                seated
            }
            None => {
                *slot = Some(Holder {
                    person: person.to_string(),
                    here: true,
                    connected: false,
                    camera: false,
                });
                Seated {
                    replaced: false,
                    back: false,
                    changed_hands,
                }
            }
        };
        Ok(seated)
    }

    /// The holder's connection dropped: the seat waits for them. Their peer connection
    /// counts as not connected (and their camera off) until they report again.
    pub fn away(&mut self, seat: Seat, now: Millis) -> Result<(), Refusal> {
        if self.holder(seat).is_none_or(|h| !h.here) {
            return Err(Refusal::NotInRoom);
        }
        if let Some(h) = self.holder_mut(seat) {
            h.here = false;
            h.connected = false;
            h.camera = false;
        }
        self.recount(now);
        Ok(())
    }

    /// The holder did not come back within the grace period: the seat is free, and a
    /// call they were in ends.
    pub fn gone(&mut self, seat: Seat, now: Millis) -> Result<Option<Ended>, Refusal> {
        if self.holder(seat).is_none_or(|h| h.here) {
            return Err(Refusal::NotInRoom);
        }
        let ended = self.stop_call(CallEnd::Gone(seat), now);
        *self.slot(seat) = None;
        Ok(ended)
    }

    /// The holder of `seat` leaves (connected or away): the seat is free at once, a call
    /// they were in ends, and the room stays open. Whoever was admitted may come back.
    pub fn leave(&mut self, seat: Seat, now: Millis) -> Result<Option<Ended>, Refusal> {
        if self.ended {
            return Err(Refusal::RoomEnded);
        }
        if self.holder(seat).is_none() {
            return Err(Refusal::NotInRoom);
        }
        let ended = self.stop_call(CallEnd::Left(seat), now);
        *self.slot(seat) = None;
        Ok(ended)
    }

    /// A member asks to end the room for everyone: only the host (the agent's seat) may.
    pub fn end_by(&mut self, seat: Seat, now: Millis) -> Result<Option<Ended>, Refusal> {
        self.check_member(seat)?;
        if seat != Seat::Agent {
            return Err(Refusal::NotHost);
        }
        self.end(now)
    }

    /// The room ends for everyone (the host ended it, by the socket or the API; or the hub
    /// stops): its call ends, both seats are freed, nothing more happens in it.
    pub fn end(&mut self, now: Millis) -> Result<Option<Ended>, Refusal> {
        if self.ended {
            return Err(Refusal::RoomEnded);
        }
        let ended = self.stop_call(CallEnd::RoomEnded, now);
        self.agent = None;
        self.visitor = None;
        self.ended = true;
        Ok(ended)
    }

    fn check_member(&self, seat: Seat) -> Result<(), Refusal> {
        if self.ended {
            return Err(Refusal::RoomEnded);
        }
        if !self.present(seat) {
            return Err(Refusal::NotInRoom);
        }
        Ok(())
    }

    /// `seat` rings the other side.
    pub fn start_call(&mut self, seat: Seat) -> Result<(), Refusal> {
        self.check_member(seat)?;
        if self.call != Call::Idle {
            return Err(Refusal::CallInProgress);
        }
        if !self.present(seat.other()) {
            return Err(Refusal::PeerAbsent);
        }
        self.call = Call::Ringing { caller: seat };
        Ok(())
    }

    /// `seat`, being rung, accepts: the call is active from now.
    pub fn accept(&mut self, seat: Seat, now: Millis) -> Result<(), Refusal> {
        self.check_member(seat)?;
        match self.call {
            Call::Ringing { caller } if caller != seat => {}
            _ => return Err(Refusal::NotRinging),
        }
        self.call = Call::Active(Accounting {
            accepted_at: now,
            connected_ms: 0,
            connected_since: None,
            camera_ms: 0,
            camera_since: None,
        });
        // Reports from before the call do not count; each side reports again in it.
        for h in [self.agent.as_mut(), self.visitor.as_mut()].into_iter().flatten() {
            h.connected = false;
            h.camera = false;
        }
        Ok(())
    }

    /// `seat`, being rung, declines (its media is not ready, or the person said no).
    pub fn reject(&mut self, seat: Seat, now: Millis) -> Result<Option<Ended>, Refusal> {
        self.check_member(seat)?;
        match self.call {
            Call::Ringing { caller } if caller != seat => {}
            _ => return Err(Refusal::NotRinging),
        }
        Ok(self.stop_call(CallEnd::Rejected(seat), now))
    }

    /// `seat` hangs up a ringing or active call; both sides get the end.
    pub fn hang_up(&mut self, seat: Seat, now: Millis) -> Result<Option<Ended>, Refusal> {
        self.check_member(seat)?;
        if self.call == Call::Idle {
            return Err(Refusal::NoCall);
        }
        Ok(self.stop_call(CallEnd::HungUp(seat), now))
    }

    /// Where a signalling frame from `seat` goes: the other seat, in an active call.
    pub fn signal(&self, seat: Seat) -> Result<Seat, Refusal> {
        self.check_member(seat)?;
        if !matches!(self.call, Call::Active(_)) {
            return Err(Refusal::NoCall);
        }
        if !self.present(seat.other()) {
            return Err(Refusal::PeerAbsent);
        }
        Ok(seat.other())
    }

    /// `seat`'s periodic report of its peer connection and camera, in an active call.
    pub fn report(&mut self, seat: Seat, connected: bool, camera: bool, now: Millis) -> Result<(), Refusal> {
        self.check_member(seat)?;
        if !matches!(self.call, Call::Active(_)) {
            return Err(Refusal::NoCall);
        }
        if let Some(h) = self.holder_mut(seat) {
            h.connected = connected;
            h.camera = camera;
        }
        self.recount(now);
        Ok(())
    }

    /// Closes or opens the running stretches after a change of what the seats report.
    fn recount(&mut self, now: Millis) {
        let both =
            self.agent.as_ref().is_some_and(|h| h.connected) && self.visitor.as_ref().is_some_and(|h| h.connected);
        let camera = self.visitor.as_ref().is_some_and(|h| h.camera);
        let Call::Active(a) = &mut self.call else { return };
        let now = now.max(a.accepted_at);
        stretch(&mut a.connected_ms, &mut a.connected_since, both, now);
        stretch(&mut a.camera_ms, &mut a.camera_since, camera, now);
    }

    /// Ends a ringing or active call, if any.
    fn stop_call(&mut self, why: CallEnd, now: Millis) -> Option<Ended> {
        let call = std::mem::replace(&mut self.call, Call::Idle);
        let summary = match call {
            Call::Idle => return None,
            Call::Ringing { .. } => None,
            Call::Active(mut a) => {
                let now = now.max(a.accepted_at);
                stretch(&mut a.connected_ms, &mut a.connected_since, false, now);
                stretch(&mut a.camera_ms, &mut a.camera_since, false, now);
                Some(CallSummary {
                    started_at: a.accepted_at,
                    length_ms: now - a.accepted_at,
                    connected_ms: a.connected_ms,
                    camera_ms: a.camera_ms,
                })
            }
        };
        Some(Ended { why, summary })
    }
}

/// Adds a finished stretch to `total`, or starts one, as `on` says.
fn stretch(total: &mut i64, since: &mut Option<Millis>, on: bool, now: Millis) {
    match (*since, on) {
        (None, true) => *since = Some(now),
        (Some(start), false) => {
            *total += now - start;
            *since = None;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
