//! Who may decide an approval, and what the votes add up to. Pure functions:
//! the broker checks them before a decision, the store applies [`tally`]
//! inside the decision's transaction.

use super::{ApprovalError, ApprovalStatus, Choice, Vote};
use crate::audit::PrincipalRecord;
use crate::identity::Principal;

/// Whether `approver` may decide a request `requester` made: never one's
/// own request, one made by an agent acting for oneself, or (as an agent)
/// one made by the person one acts for or by another agent of theirs; and
/// only as a member of one of the approval's groups.
pub fn may_decide(
    approver: &Principal,
    requester: &PrincipalRecord,
    approver_groups: &[String],
) -> Result<(), ApprovalError> {
    let same_caller = approver.subject == requester.subject && approver.issuer == requester.issuer;
    let for_me = requester.acting_for.as_deref() == Some(approver.subject.as_str());
    let for_them = approver.acting_for.as_deref() == Some(requester.subject.as_str());
    let same_human = approver.acting_for.is_some() && approver.acting_for == requester.acting_for;
    if same_caller || for_me || for_them || same_human {
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
/// as the human it acts for, so nobody approves twice through an agent.
pub fn decider(p: &Principal) -> String {
    p.acting_for.clone().unwrap_or_else(|| p.subject.clone())
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
