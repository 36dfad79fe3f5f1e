//! The server-to-client half of a session: match each answer to what
//! caused it, resolve masks once per result set, mask rows as they stream,
//! swap stand-in errors for refusals, and record every statement once its
//! outcome is known.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::BytesMut;
use serde_json::json;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use super::PgProxy;
use super::codec::{self, FieldDescription, Frame, Notice, WireError};
use super::event;
use super::kept_plans::{KeptPlan, KeptPlans};
use super::masking::MaskPlan;
use super::pipeline::{ClientNote, Expect, Refusal, StatementRun};
use super::record::{self, StatementResult};
use super::session::Session;
use super::transport::{FrameReader, PgStream, STREAM_THRESHOLD};
use crate::mask::{MaskMethod, MaskRule, MaskTarget};
use crate::policy::chain::Verdict;

const FLUSH_AT: usize = 64 * 1024;

/// A bound portal: the statement it runs and what is known of its result.
struct Portal {
    run: Arc<StatementRun>,
    columns: Option<Vec<FieldDescription>>,
    plan: Option<Option<Arc<MaskPlan>>>,
    result: StatementResult,
    executed: bool,
}

/// The simple query being answered.
#[derive(Default)]
struct QueryProgress {
    plan: Option<Arc<MaskPlan>>,
    result: StatementResult,
}

pub struct ResponseSide {
    proxy: Arc<PgProxy>,
    session: Arc<Session>,
    client: WriteHalf<PgStream>,
    out: BytesMut,
    expect: mpsc::UnboundedReceiver<Expect>,
    notes: mpsc::UnboundedReceiver<ClientNote>,
    queue: VecDeque<Expect>,
    portals: HashMap<String, Portal>,
    query: Option<QueryProgress>,
    /// The text masks of the statement whose COPY data is streaming.
    copy_masks: Option<(Arc<StatementRun>, Option<Arc<crate::mask::CompiledMasks>>)>,
    /// The client side has ended (Terminate or disconnect): the server
    /// closing is then the normal end.
    client_done: bool,
    /// Mask plans resolved before, for results of the same shape.
    kept_plans: KeptPlans,
}

impl ResponseSide {
    pub fn new(
        proxy: Arc<PgProxy>,
        session: Arc<Session>,
        client: WriteHalf<PgStream>,
        expect: mpsc::UnboundedReceiver<Expect>,
        notes: mpsc::UnboundedReceiver<ClientNote>,
    ) -> Self {
        Self {
            kept_plans: KeptPlans::default(),
            proxy,
            session,
            client,
            out: BytesMut::with_capacity(64 * 1024),
            expect,
            notes,
            queue: VecDeque::new(),
            portals: HashMap::new(),
            query: None,
            copy_masks: None,
            client_done: false,
        }
    }

    pub async fn run(
        mut self,
        mut upstream: FrameReader<ReadHalf<PgStream>>,
    ) -> Result<(), WireError> {
        let result = self.relay(&mut upstream).await;
        let lost = match &result {
            Ok(()) => None,
            Err(WireError::Closed) if self.client_done => None,
            Err(WireError::Closed) => Some("the database server closed the connection".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = &lost {
            tracing::info!(reason = %reason, "upstream session ended");
            let n = Notice::new(
                "FATAL",
                "08006",
                format!("Gatehouse lost the database session: {reason}"),
            );
            n.frame(b'E').encode(&mut self.out);
        }
        let _ = self.flush().await;
        let _ = self.client.shutdown().await;
        self.abandon(lost.as_deref().unwrap_or("the session ended"));
        result
    }

    async fn relay(
        &mut self,
        upstream: &mut FrameReader<ReadHalf<PgStream>>,
    ) -> Result<(), WireError> {
        loop {
            let head = tokio::select! {
                biased;
                note = self.notes.recv() => match note {
                    Some(ClientNote::Frame(f)) => {
                        f.encode(&mut self.out);
                        self.flush().await?;
                        continue;
                    }
                    Some(ClientNote::Fatal(f)) => {
                        f.encode(&mut self.out);
                        self.flush().await?;
                        return Ok(());
                    }
                    // The request side ended: keep delivering until the server closes.
                    None => {
                        self.client_done = true;
                        upstream.head().await?
                    }
                },
                h = upstream.head() => h?,
            };
            let passthrough_large = head.len > STREAM_THRESHOLD
                && match head.tag {
                    b'D' => self.row_plan().await.is_none(),
                    b'd' => self.copy_masks().is_none(),
                    _ => false,
                };
            if passthrough_large {
                if head.tag == b'D' {
                    self.count_row();
                }
                self.flush_out().await?;
                upstream.stream_to(head, &mut self.client).await?;
                continue;
            }
            let frame = upstream.frame(head).await?;
            let fatal = self.handle(frame).await?;
            if fatal {
                self.flush().await?;
                return Ok(());
            }
            if !upstream.has_frame() || self.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
    }

    /// Handles one server message. Returns true after a FATAL error.
    async fn handle(&mut self, frame: Frame) -> Result<bool, WireError> {
        match frame.tag {
            b'E' => return self.error(frame),
            b'Z' => {
                self.ready_for_query();
                self.emit(&frame);
            }
            b'1' | b'3' => {
                self.pop();
                self.emit(&frame);
            }
            b'2' => {
                if let Some(Expect::BindComplete { portal, run }) = self.pop() {
                    let old = self.portals.insert(
                        portal,
                        Portal {
                            run,
                            columns: None,
                            plan: None,
                            result: StatementResult::default(),
                            executed: false,
                        },
                    );
                    if let Some(old) = old {
                        self.finish_unexecuted(old);
                    }
                }
                self.emit(&frame);
            }
            b'T' => self.row_description(frame).await?,
            b'n' => {
                let swallow = match self.front() {
                    Some(Expect::DescribePortal { swallow, portal }) => {
                        let (swallow, portal) = (*swallow, portal.clone());
                        if let Some(p) = self.portals.get_mut(&portal) {
                            p.columns = Some(vec![]);
                            p.plan = Some(None);
                        }
                        self.pop();
                        swallow
                    }
                    Some(Expect::DescribeStatement) => {
                        self.pop();
                        false
                    }
                    _ => false,
                };
                if !swallow {
                    self.emit(&frame);
                }
            }
            b'D' => self.data_row(frame).await?,
            b'C' | b'I' | b's' => self.command_done(frame),
            b'd' => {
                let masked = self.copy_masks().map(|m| {
                    let t = m
                        .text
                        .as_ref()
                        .map(|t| crate::mask::stream::mask_all(t, &m.hash_key, &frame.body));
                    t.unwrap_or_else(|| frame.body.to_vec())
                });
                match masked {
                    Some(body) => self.emit(&Frame::new(b'd', body)),
                    None => self.emit(&frame),
                }
            }
            _ => self.emit(&frame),
        }
        Ok(false)
    }

    fn error(&mut self, frame: Frame) -> Result<bool, WireError> {
        let notice = Notice::decode(&frame.body)?;
        let fatal = matches!(notice.get(b'S'), Some("FATAL") | Some("PANIC"));
        let err = json!({
            "sqlstate": notice.code(),
            "message": notice.message(),
            "severity": notice.get(b'V').or(notice.get(b'S')),
        });
        match self.front() {
            Some(Expect::Refused { .. }) => {
                let Some(Expect::Refused {
                    run,
                    refusal,
                    simple,
                }) = self.pop()
                else {
                    unreachable!("front was Refused")
                };
                self.emit(&refusal_frame(&refusal));
                if let Some(run) = &run {
                    let result = StatementResult {
                        not_executed: Some(format!("{}: {}", refusal.sqlstate, refusal.message)),
                        ..Default::default()
                    };
                    self.record(run, result);
                }
                if simple {
                    // The stand-in's ReadyForQuery is still to come.
                    self.queue.push_front(Expect::Sync);
                } else {
                    self.skip_to_sync();
                }
            }
            Some(Expect::Query { .. }) => {
                let q = self.query_progress();
                q.result.error.get_or_insert(err);
                q.plan = None;
                self.emit(&frame);
            }
            Some(Expect::Sync) | None => self.emit(&frame),
            Some(_) => {
                let unit = self.pop();
                match unit {
                    Some(Expect::Execute { portal }) => {
                        if let Some(p) = self.portals.get_mut(&portal) {
                            p.executed = true;
                            let mut result = std::mem::take(&mut p.result);
                            result.error = Some(err.clone());
                            let run = p.run.clone();
                            self.record(&run, result);
                        }
                    }
                    Some(Expect::BindComplete { run, .. }) => {
                        let result = StatementResult {
                            error: Some(err.clone()),
                            ..Default::default()
                        };
                        self.record(&run, result);
                    }
                    _ => {}
                }
                self.emit(&frame);
                self.skip_to_sync();
            }
        }
        Ok(fatal)
    }

    /// After an extended-protocol error the server ignores everything up to
    /// Sync; so do the expectations, and statements that never ran are recorded.
    fn skip_to_sync(&mut self) {
        loop {
            self.pull();
            match self.queue.front() {
                None | Some(Expect::Sync) | Some(Expect::Query { .. }) => break,
                _ => {}
            }
            match self.queue.pop_front() {
                Some(Expect::BindComplete { run, .. })
                | Some(Expect::Refused { run: Some(run), .. }) => {
                    let result = StatementResult {
                        not_executed: Some(
                            "skipped: an earlier message in the same pipeline failed".into(),
                        ),
                        ..Default::default()
                    };
                    self.record(&run, result);
                }
                Some(_) => {}
                None => break,
            }
        }
    }

    fn ready_for_query(&mut self) {
        match self.pop() {
            Some(Expect::Query { run }) => {
                let result = self.query.take().map(|q| q.result).unwrap_or_default();
                self.record(&run, result);
            }
            Some(Expect::Sync) => {
                // Portals of an implicit transaction are gone after Sync; one
                // that was bound but never executed is recorded as such.
                let unexecuted: Vec<String> = self
                    .portals
                    .iter()
                    .filter(|(_, p)| !p.executed)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in unexecuted {
                    if let Some(p) = self.portals.remove(&k) {
                        self.finish_unexecuted(p);
                    }
                }
            }
            _ => {}
        }
    }

    async fn row_description(&mut self, frame: Frame) -> Result<(), WireError> {
        match self.front() {
            Some(Expect::DescribeStatement) => {
                self.pop();
                self.emit(&frame);
            }
            Some(Expect::DescribePortal { .. }) => {
                let Some(Expect::DescribePortal { portal, swallow }) = self.pop() else {
                    unreachable!("front was DescribePortal")
                };
                let fields = codec::decode_row_description(&frame.body)?;
                if let Some(p) = self.portals.get_mut(&portal) {
                    p.columns = Some(fields);
                    p.plan = None;
                }
                if !swallow {
                    self.emit(&frame);
                }
            }
            Some(Expect::Query { run }) => {
                let run = run.clone();
                let fields = codec::decode_row_description(&frame.body)?;
                let mut result = std::mem::take(&mut self.query_progress().result);
                let (plan, notice) = self.plan(&run, &fields, &mut result).await;
                let q = self.query_progress();
                q.result = result;
                q.plan = plan;
                if let Some(n) = notice {
                    self.emit(&n);
                }
                self.emit(&frame);
            }
            _ => self.emit(&frame),
        }
        Ok(())
    }

    async fn data_row(&mut self, frame: Frame) -> Result<(), WireError> {
        let plan = self.row_plan().await;
        self.count_row();
        let Some(plan) = plan else {
            self.emit(&frame);
            return Ok(());
        };
        match plan.apply(&frame.body)? {
            Some(masked) => {
                self.add_masked_value();
                self.emit(&masked);
            }
            None => self.emit(&frame),
        }
        Ok(())
    }

    fn command_done(&mut self, frame: Frame) {
        let tag = (frame.tag == b'C').then(|| {
            String::from_utf8_lossy(frame.body.strip_suffix(&[0]).unwrap_or(&frame.body))
                .into_owned()
        });
        match self.front() {
            Some(Expect::Query { .. }) => {
                let q = self.query_progress();
                if let Some(t) = tag {
                    q.result.command_tags.push(t);
                }
                q.plan = None;
            }
            Some(Expect::Execute { .. }) => {
                if let Some(Expect::Execute { portal }) = self.pop()
                    && let Some(p) = self.portals.get_mut(&portal)
                {
                    p.executed = true;
                    match tag {
                        Some(t) => p.result.command_tags.push(t),
                        None => p.result.suspended = frame.tag == b's',
                    }
                    // Each execution is recorded when it ends (a suspended
                    // portal's next Execute gets a record of its own).
                    let result = std::mem::take(&mut p.result);
                    let run = p.run.clone();
                    self.record(&run, result);
                }
            }
            _ => {}
        }
        self.emit(&frame);
    }

    /// Resolves masks for one result set: the statement's own masks plus
    /// what `on-result-columns` says about these columns.
    async fn plan(
        &mut self,
        run: &Arc<StatementRun>,
        fields: &[FieldDescription],
        result: &mut StatementResult,
    ) -> (Option<Arc<MaskPlan>>, Option<Frame>) {
        let kept_key = self.kept_plans.key(run, fields);
        if let Some(k) = kept_key.and_then(|key| self.kept_plans.get(key, fields)) {
            result.result_decisions.push(k.result_outcome.clone());
            if let Some(plan) = &k.plan {
                result.note_plan(plan);
            }
            return (k.plan.clone(), k.notice.clone());
        }
        let columns = self
            .proxy
            .catalog
            .resolve(&self.session.database, fields)
            .await;
        let wit_columns = event::columns(&columns);
        let key = self.proxy.chain.cache_key(
            "postgres.on-result-columns",
            "columns",
            self.session.principal_key.clone(),
            Arc::from(format!(
                "{}\u{0}{}",
                run.analysis.shape(),
                serde_json::to_string(&wit_columns_shape(&columns)).unwrap_or_default()
            )),
        );
        let outcome = match self.proxy.chain.cached(&key) {
            Some(hit) => Some(hit),
            None => {
                let view = run.wit(&self.session);
                let fresh = self
                    .proxy
                    .chain
                    .run_blocking(move |p| {
                        p.postgres_on_result_columns(&view.ctx, &view.query, &wit_columns)
                    })
                    .await
                    .ok();
                if let Some(o) = &fresh {
                    self.proxy.chain.remember(key, o);
                }
                fresh.map(Arc::new)
            }
        };
        let (plan, notice) = self.build_plan(run, &columns, outcome.as_deref(), result);
        if let (Some(key), Some(o)) = (kept_key, &outcome)
            && o.cached
        {
            self.kept_plans.put(
                key,
                fields,
                run,
                KeptPlan {
                    result_outcome: o.clone(),
                    plan: plan.clone(),
                    notice: notice.clone(),
                },
            );
        }
        result.result_decisions.extend(outcome);
        (plan, notice)
    }

    /// The statement's masks and the result decision's, compiled against
    /// these columns.
    fn build_plan(
        &self,
        run: &StatementRun,
        columns: &[event::ResolvedColumn],
        outcome: Option<&crate::policy::ChainOutcome>,
        result: &mut StatementResult,
    ) -> (Option<Arc<MaskPlan>>, Option<Frame>) {
        let mut rules: Vec<MaskRule> = run.outcome.masks.clone();
        let withhold = match outcome {
            None => Some("the result policy could not be asked".to_string()),
            Some(o) => {
                rules.extend(o.masks.iter().cloned());
                match &o.verdict {
                    Verdict::Allow => None,
                    Verdict::Deny { policy, reason } => Some(format!("{policy}: {reason}")),
                    Verdict::RequireApproval { policy, approval } => {
                        Some(format!("{policy}: requires approval: {}", approval.reason))
                    }
                }
            }
        };
        let notice = withhold.map(|why| {
            // The statement has run; what it returns is withheld value by value.
            for c in columns {
                rules.push(MaskRule {
                    target: MaskTarget::Column(c.field.name.clone()),
                    method: MaskMethod::Redact,
                });
            }
            tracing::info!(reason = %why, "result withheld");
            Notice::new(
                "WARNING",
                "01000",
                format!("result values withheld by policy {why}"),
            )
            .frame(b'N')
        });
        // Policies may repeat a rule at both hooks; once is enough.
        let mut seen = std::collections::HashSet::new();
        rules.retain(|r| seen.insert(r.clone()));
        if rules.is_empty() {
            return (None, notice);
        }
        let compiled = match self.proxy.masks.compile(&rules, &[]) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "mask rules failed to compile; withholding every column");
                let all: Vec<MaskRule> = columns
                    .iter()
                    .map(|c| MaskRule {
                        target: MaskTarget::Column(c.field.name.clone()),
                        method: MaskMethod::Redact,
                    })
                    .collect();
                match self.proxy.masks.compile(&all, &[]) {
                    Ok(c) => c,
                    Err(_) => return (None, notice),
                }
            }
        };
        let Some(plan) = MaskPlan::build(columns, compiled) else {
            return (None, notice);
        };
        result.note_plan(&plan);
        (Some(Arc::new(plan)), notice)
    }

    async fn portal_plan(&mut self, portal: &str) -> Option<Arc<MaskPlan>> {
        let p = self.portals.get_mut(portal)?;
        if let Some(plan) = &p.plan {
            return plan.clone();
        }
        let fields = p.columns.clone().unwrap_or_default();
        let run = p.run.clone();
        let mut result = std::mem::take(&mut p.result);
        let (plan, notice) = self.plan(&run, &fields, &mut result).await;
        if let Some(n) = notice {
            self.emit(&n);
        }
        let p = self.portals.get_mut(portal)?;
        p.result = result;
        p.plan = Some(plan.clone());
        plan
    }

    /// The mask plan for rows arriving now, resolved on first use.
    async fn row_plan(&mut self) -> Option<Arc<MaskPlan>> {
        match self.front() {
            Some(Expect::Query { .. }) => self.query.as_ref().and_then(|q| q.plan.clone()),
            Some(Expect::Execute { portal }) => {
                let portal = portal.clone();
                self.portal_plan(&portal).await
            }
            _ => None,
        }
    }

    /// Text masks that apply to COPY TO STDOUT data of the current statement.
    fn copy_masks(&mut self) -> Option<Arc<crate::mask::CompiledMasks>> {
        let run = match self.front() {
            Some(Expect::Query { run }) => run.clone(),
            Some(Expect::Execute { portal }) => {
                let portal = portal.clone();
                self.portals.get(&portal)?.run.clone()
            }
            _ => return None,
        };
        if let Some((cached_run, masks)) = &self.copy_masks
            && Arc::ptr_eq(cached_run, &run)
        {
            return masks.clone();
        }
        // Once per statement, not per CopyData message.
        let masks = if run.outcome.masks.is_empty() {
            None
        } else {
            self.proxy
                .masks
                .compile(&run.outcome.masks, &[])
                .ok()
                .filter(|c| c.text.is_some())
        };
        self.copy_masks = Some((run, masks.clone()));
        masks
    }

    fn count_row(&mut self) {
        let portal = match self.queue.front() {
            Some(Expect::Query { .. }) => {
                self.query_progress().result.rows += 1;
                return;
            }
            Some(Expect::Execute { portal }) => portal.clone(),
            _ => return,
        };
        if let Some(p) = self.portals.get_mut(&portal) {
            p.result.rows += 1;
        }
    }

    fn add_masked_value(&mut self) {
        let portal = match self.queue.front() {
            Some(Expect::Query { .. }) => {
                self.query_progress().result.masked_values += 1;
                return;
            }
            Some(Expect::Execute { portal }) => portal.clone(),
            _ => return,
        };
        if let Some(p) = self.portals.get_mut(&portal) {
            p.result.masked_values += 1;
        }
    }

    fn query_progress(&mut self) -> &mut QueryProgress {
        self.query.get_or_insert_with(QueryProgress::default)
    }

    fn finish_unexecuted(&mut self, p: Portal) {
        if !p.executed {
            let result = StatementResult {
                not_executed: Some("bound but never executed".into()),
                ..p.result
            };
            self.record(&p.run, result);
        }
    }

    fn record(&self, run: &StatementRun, result: StatementResult) {
        let verdict = run.verdict_label();
        let verdict = if result.error.is_some() && verdict == "allow" {
            "error"
        } else {
            verdict
        };
        record::statement(&self.proxy.audit, &self.session, run, result, verdict);
    }

    /// Records what was still in flight when the session ended.
    fn abandon(&mut self, reason: &str) {
        self.pull();
        let lost = json!({"sqlstate": "08006", "message": reason});
        let pending: Vec<Expect> = self.queue.drain(..).collect();
        for e in pending {
            match e {
                Expect::Query { run } => {
                    let mut result = self.query.take().map(|q| q.result).unwrap_or_default();
                    result.error.get_or_insert(lost.clone());
                    self.record(&run, result);
                }
                Expect::BindComplete { run, .. } | Expect::Refused { run: Some(run), .. } => {
                    let result = StatementResult {
                        not_executed: Some(format!("session ended first: {reason}")),
                        ..Default::default()
                    };
                    self.record(&run, result);
                }
                Expect::Execute { portal } => {
                    if let Some(p) = self.portals.get_mut(&portal) {
                        p.executed = true;
                        let mut result = std::mem::take(&mut p.result);
                        result.error.get_or_insert(lost.clone());
                        let run = p.run.clone();
                        self.record(&run, result);
                    }
                }
                _ => {}
            }
        }
        let portals: Vec<Portal> = self.portals.drain().map(|(_, p)| p).collect();
        for p in portals {
            self.finish_unexecuted(p);
        }
    }

    fn pull(&mut self) {
        while let Ok(e) = self.expect.try_recv() {
            self.queue.push_back(e);
        }
    }

    fn front(&mut self) -> Option<&Expect> {
        if self.queue.is_empty() {
            self.pull();
        }
        self.queue.front()
    }

    fn pop(&mut self) -> Option<Expect> {
        if self.queue.is_empty() {
            self.pull();
        }
        self.queue.pop_front()
    }

    fn emit(&mut self, frame: &Frame) {
        frame.encode(&mut self.out);
    }

    async fn flush_out(&mut self) -> Result<(), WireError> {
        if !self.out.is_empty() {
            self.client.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), WireError> {
        self.flush_out().await?;
        self.client.flush().await?;
        Ok(())
    }
}

/// A response side stopped from outside (the session stops waiting for the
/// server two seconds after the client has gone) still records what was in
/// flight; after [`ResponseSide::run`] there is nothing left to record.
impl Drop for ResponseSide {
    fn drop(&mut self) {
        self.abandon("the client left and the server did not answer in time");
    }
}

fn refusal_frame(r: &Refusal) -> Frame {
    let mut n = Notice::new("ERROR", r.sqlstate, &r.message);
    if let Some(d) = &r.detail {
        n = n.with(b'D', d);
    }
    if let Some(h) = &r.hint {
        n = n.with(b'H', h);
    }
    n.frame(b'E')
}

/// The part of a result's columns a policy sees: name, table and type.
fn wit_columns_shape(columns: &[super::event::ResolvedColumn]) -> Vec<(&str, Option<&str>, &str)> {
    columns
        .iter()
        .map(|c| (c.field.name.as_str(), c.table.as_deref(), &*c.type_name))
        .collect()
}
