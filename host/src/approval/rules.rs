//! Who may decide an approval, and what the votes add up to. Pure functions:
//! the broker checks them before a decision, the store applies [`tally`]
//! inside the decision's transaction.

use super::{ApprovalError, ApprovalStatus, Choice, Vote};
use crate::audit::PrincipalRecord;
use crate::identity::Principal;

/// Whether `approver` may decide a request `requester` made: never one's
/// own request, one made by an agent acting for oneself, or (as an agent)
/// one made by the person one acts for or by another agent of theirs, nor
/// one made through another credential of the same person (a second key
/// with the same owner, a key owned by the address one signs in with); and
/// only as a member of one of the approval's groups.
pub fn may_decide(
    approver: &Principal,
    requester: &PrincipalRecord,
    approver_groups: &[String],
) -> Result<(), ApprovalError> {
    if is_own(approver, requester) {
        return Err(ApprovalError::OwnRequest(approver.subject.clone()));
    }
    if !approver.groups.iter().any(|g| approver_groups.contains(g)) {
        return Err(ApprovalError::NotApprover(
            approver.subject.clone(),
            approver_groups.join(", "),
        ));
    }
    Ok(())
}

/// Whether `caller` may see an approval: readers of the audit trail (admin
/// and auditor groups) see all; others see the ones they may decide (by
/// group) and their own requests. Requests carry statements with their
/// parameters and request bodies, so nobody else reads them.
pub fn may_see(
    caller: &Principal,
    requester: &PrincipalRecord,
    approver_groups: &[String],
    reader_groups: &[String],
) -> bool {
    caller
        .groups
        .iter()
        .any(|g| reader_groups.contains(g) || approver_groups.contains(g))
        || is_own(caller, requester)
}

/// Whether a request `requester` made is `caller`'s own: made by the same
/// credential, by an agent acting for the caller, by the person an agent
/// caller acts for, or through another credential of the same person.
pub fn is_own(caller: &Principal, requester: &PrincipalRecord) -> bool {
    let same_caller = caller.subject == requester.subject && caller.issuer == requester.issuer;
    // The people behind each side: whom an agent acts for, and whose
    // credential it is. A subject counts as a person where the other side
    // names it as one (`acting_for`, `person`).
    let theirs = [requester.acting_for.as_deref(), requester.person.as_deref()];
    let mine = [caller.acting_for.as_deref(), caller.person.as_deref()];
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    let named_in =
        |who: &str, people: &[Option<&str>]| people.iter().flatten().any(|p| same(p, who));
    let shared_person = mine.iter().flatten().any(|m| named_in(m, &theirs));
    same_caller
        || shared_person
        || named_in(&caller.subject, &theirs)
        || named_in(&requester.subject, &mine)
}

/// The decision's reason, trimmed; a denial must give one.
pub fn reason(approve: bool, reason: Option<String>) -> Result<Option<String>, ApprovalError> {
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if !approve && reason.is_none() {
        return Err(ApprovalError::ReasonRequired);
    }
    Ok(reason)
}

/// The person behind a decision, for "distinct approvers": an agent counts
/// as the human it acts for and a key as its owner, so nobody approves
/// twice through a second credential.
pub fn decider(p: &Principal) -> String {
    match p.acting_for.as_deref().or(p.person.as_deref()) {
        Some(person) => person.trim().to_lowercase(),
        None => p.subject.clone(),
    }
}

/// What the votes so far decide: any denial denies; `min` approvals approve;
/// otherwise the request keeps waiting.
pub fn tally(min: u32, votes: &[Vote]) -> ApprovalStatus {
    if votes.iter().any(|v| v.decision == Choice::Deny) {
        return ApprovalStatus::Denied;
    }
    let approvals = votes
        .iter()
        .filter(|v| v.decision == Choice::Approve)
        .count();
    if approvals >= min.max(1) as usize {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrincipalKind;

    fn person(subject: &str, groups: &[&str], acting_for: Option<&str>) -> Principal {
        Principal {
            subject: subject.into(),
            issuer: "gatehouse".into(),
            kind: if acting_for.is_some() {
                PrincipalKind::Agent
            } else {
                PrincipalKind::Human
            },
            groups: groups.iter().map(|g| g.to_string()).collect(),
            acting_for: acting_for.map(str::to_string),
            person: None,
            allowed_connections: vec![],
        }
    }

    fn vote(p: &Principal, decision: Choice) -> Vote {
        Vote {
            approver: p.record(),
            decision,
            reason: None,
            at_ms: 0,
        }
    }

    #[test]
    fn nobody_decides_their_own_request_or_their_agents() {
        let groups = vec!["dba".to_string()];
        let bot = person("bot", &["dba"], Some("alice")).record();
        let own = |p: &Principal| {
            matches!(
                may_decide(p, &bot, &groups),
                Err(ApprovalError::OwnRequest(_))
            )
        };
        assert!(own(&person("bot", &["dba"], Some("alice"))));
        assert!(own(&person("alice", &["dba"], None)));
        assert!(own(&person("bot2", &["dba"], Some("alice"))));
        // An agent acting for the requester decides nothing either.
        let alice = person("alice", &[], None).record();
        assert!(matches!(
            may_decide(&person("helper", &["dba"], Some("alice")), &alice, &groups),
            Err(ApprovalError::OwnRequest(_))
        ));
        // Same subject at another issuer is another caller.
        let mut other = person("bot", &["dba"], None);
        other.issuer = "https://login.example.com".into();
        assert_eq!(
            may_decide(&other, &person("bot", &[], None).record(), &groups),
            Ok(())
        );
        assert_eq!(
            may_decide(&person("dora", &["dba"], None), &bot, &groups),
            Ok(())
        );
    }

    #[test]
    fn only_approver_groups_decide() {
        let groups = vec!["dba".to_string(), "sre".to_string()];
        let bot = person("bot", &[], None).record();
        assert_eq!(
            may_decide(&person("dave", &["dev"], None), &bot, &groups),
            Err(ApprovalError::NotApprover("dave".into(), "dba, sre".into()))
        );
        assert_eq!(
            may_decide(&person("sam", &["dev", "sre"], None), &bot, &groups),
            Ok(())
        );
    }

    /// A key named `name` owned by `owner`, as [`crate::identity::keys`] makes it.
    fn key(name: &str, owner: &str, groups: &[&str], agent: bool) -> Principal {
        let mut p = person(name, groups, agent.then_some(owner));
        p.person = Some(owner.into());
        p
    }

    #[test]
    fn a_second_credential_of_the_same_person_decides_nothing() {
        let groups = vec!["dba".to_string()];
        let own = |approver: &Principal, requester: &Principal| {
            matches!(
                may_decide(approver, &requester.record(), &groups),
                Err(ApprovalError::OwnRequest(_))
            )
        };
        // Alice's human key, named unlike her, asks; her other key approves.
        let laptop = key("alice-laptop", "alice@example.com", &["dev"], false);
        let ops = key("ops-approver", "Alice@Example.com", &["dba"], false);
        assert!(own(&ops, &laptop));
        // Her agent's key asks; she signs in (email claim) and approves.
        let agent = key("ci-bot", "alice@example.com", &["dev"], true);
        let mut alice_sso = person("00u1abcd", &["dba"], None);
        alice_sso.issuer = "https://login.example.com".into();
        alice_sso.person = Some("alice@example.com".into());
        assert!(own(&alice_sso, &agent));
        assert!(own(&alice_sso, &laptop));
        // A service key she owns approving her agent's request.
        assert!(own(
            &key("deploy", "alice@example.com", &["dba"], false),
            &agent
        ));
        // Her key approving what she asked through single sign-on.
        assert!(own(&ops, &alice_sso));
        // Somebody else's key still decides.
        let dora = key("dora-key", "dora@example.com", &["dba"], false);
        assert_eq!(may_decide(&dora, &agent.record(), &groups), Ok(()));
        assert_eq!(may_decide(&dora, &alice_sso.record(), &groups), Ok(()));
    }

    #[test]
    fn a_denial_needs_a_reason() {
        assert_eq!(reason(false, None), Err(ApprovalError::ReasonRequired));
        assert_eq!(
            reason(false, Some("  ".into())),
            Err(ApprovalError::ReasonRequired)
        );
        assert_eq!(reason(false, Some(" no ".into())), Ok(Some("no".into())));
        assert_eq!(reason(true, None), Ok(None));
    }

    #[test]
    fn agents_count_as_the_human_they_act_for() {
        assert_eq!(decider(&person("dora", &[], None)), "dora");
        assert_eq!(decider(&person("bot", &[], Some("dora"))), "dora");
        assert_eq!(
            decider(&key("dora-key", "Dora@Example.com", &[], false)),
            "dora@example.com"
        );
    }

    #[test]
    fn votes_add_up_to_a_decision() {
        let (a, b) = (person("a", &[], None), person("b", &[], None));
        assert_eq!(tally(1, &[]), ApprovalStatus::Waiting);
        assert_eq!(
            tally(1, &[vote(&a, Choice::Approve)]),
            ApprovalStatus::Approved
        );
        assert_eq!(
            tally(2, &[vote(&a, Choice::Approve)]),
            ApprovalStatus::Waiting
        );
        assert_eq!(
            tally(2, &[vote(&a, Choice::Approve), vote(&b, Choice::Approve)]),
            ApprovalStatus::Approved
        );
        // One denial is final, whatever came before.
        assert_eq!(
            tally(2, &[vote(&a, Choice::Approve), vote(&b, Choice::Deny)]),
            ApprovalStatus::Denied
        );
        assert_eq!(
            tally(0, &[vote(&a, Choice::Approve)]),
            ApprovalStatus::Approved
        );
    }
}
