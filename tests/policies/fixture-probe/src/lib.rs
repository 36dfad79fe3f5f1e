//! `fixture-probe`: exports every hook and denies with a reason that
//! describes the event and context it received, so `gatehouse policy test`
//! fixtures can check that each hook's event reaches a guest intact.
//! `mcp.filter-tools` hides the tools marked destructive;
//! `mcp-listing.filter` answers each entry described (kind, id, name,
//! description, MIME type) in place of its id, so a fixture sees every
//! field arrive.

use gatehouse_sdk::deny;
use gatehouse_sdk::types::{Context, Decision, Protocol};

gatehouse_sdk::export_policy!(Probe, wit: "../../../wit", hooks: [http, postgres, kubernetes, llm, mcp, mcp_listing, ssh]);

use bindings::{http, kubernetes, llm, mcp, mcp_listing, postgres, ssh};

pub struct Probe;

fn who(ctx: &Context) -> String {
    let labels: Vec<String> = ctx.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "by {} ({:?}) groups=[{}] labels=[{}] conn={} proto={:?} req={}",
        ctx.principal.subject,
        ctx.principal.kind,
        ctx.principal.groups.join(","),
        labels.join(","),
        ctx.session.connection,
        ctx.session.protocol,
        ctx.request_id
    )
}

fn probe(ctx: &Context, what: String) -> Decision {
    deny(format!("{what} {}", who(ctx)))
}

impl bindings::meta::Guest for Probe {
    fn describe() -> bindings::meta::Description {
        bindings::meta::Description {
            name: "fixture-probe".into(),
            version: "0.1.0".into(),
            summary: "Describes every event it receives in its deny reason".into(),
            protocols: vec![
                Protocol::Http,
                Protocol::Postgres,
                Protocol::Kubernetes,
                Protocol::Llm,
                Protocol::Mcp,
                Protocol::Ssh,
            ],
            settings_schema: String::new(),
        }
    }

    fn validate_config(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

impl http::Guest for Probe {
    fn on_request(ctx: Context, r: http::HttpRequest) -> Decision {
        let headers: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        probe(
            &ctx,
            format!(
                "http.on-request {} {}://{}{}?{} headers=[{}] body={} complete={}",
                r.method,
                r.scheme,
                r.authority,
                r.path,
                r.query.unwrap_or_default(),
                headers.join(","),
                String::from_utf8_lossy(&r.body),
                r.body_complete
            ),
        )
    }

    fn on_response(ctx: Context, r: http::HttpRequest, resp: http::HttpResponse) -> Decision {
        probe(
            &ctx,
            format!(
                "http.on-response {} {} status={}",
                r.method, r.path, resp.status
            ),
        )
    }
}

impl postgres::Guest for Probe {
    fn on_query(ctx: Context, q: postgres::Query) -> Decision {
        let kinds: Vec<String> = q
            .statements
            .iter()
            .map(|s| {
                format!(
                    "{:?} read={:?} written={:?} where={}",
                    s.kind, s.tables_read, s.tables_written, s.has_where
                )
            })
            .collect();
        probe(
            &ctx,
            format!(
                "postgres.on-query [{}] params={:?}",
                kinds.join("; "),
                q.parameters
            ),
        )
    }

    fn on_result_columns(
        ctx: Context,
        q: postgres::Query,
        columns: Vec<postgres::Column>,
    ) -> Decision {
        let cols: Vec<String> = columns
            .iter()
            .map(|c| format!("{}:{}", c.name, c.type_name))
            .collect();
        probe(
            &ctx,
            format!(
                "postgres.on-result-columns {} cols=[{}]",
                q.sql,
                cols.join(",")
            ),
        )
    }
}

impl kubernetes::Guest for Probe {
    fn on_request(ctx: Context, r: kubernetes::KubernetesRequest) -> Decision {
        probe(
            &ctx,
            format!(
                "kubernetes.on-request {} {}/{} {} ns={:?} name={:?} sub={:?} object={} command={:?}",
                r.verb,
                r.api_group,
                r.api_version,
                r.resource,
                r.namespace,
                r.name,
                r.subresource,
                r.object.unwrap_or_default(),
                r.command
            ),
        )
    }
}

impl llm::Guest for Probe {
    fn on_request(ctx: Context, r: llm::LlmRequest) -> Decision {
        let messages: Vec<String> = r
            .messages
            .iter()
            .map(|m| format!("{}:{} calls={}", m.role, m.text, m.tool_calls.len()))
            .collect();
        probe(
            &ctx,
            format!(
                "llm.on-request {} {} {} messages=[{}] tools={:?} stream={}",
                r.provider,
                r.operation,
                r.model,
                messages.join("|"),
                r.tools,
                r.stream
            ),
        )
    }

    fn on_response(ctx: Context, r: llm::LlmRequest, resp: llm::LlmResponse) -> Decision {
        let calls: Vec<String> = resp
            .tool_calls
            .iter()
            .map(|c| format!("{}({})", c.name, c.arguments))
            .collect();
        let usage = resp
            .usage
            .map(|u| format!("{}/{}", u.input_tokens, u.output_tokens))
            .unwrap_or_default();
        probe(
            &ctx,
            format!(
                "llm.on-response {} -> {} text={} calls=[{}] usage={usage}",
                r.model,
                resp.model,
                resp.text,
                calls.join(",")
            ),
        )
    }
}

impl mcp::Guest for Probe {
    fn on_request(ctx: Context, r: mcp::McpRequest) -> Decision {
        probe(
            &ctx,
            format!(
                "mcp.on-request {} tool={:?} args={} session={:?}",
                r.method,
                r.tool,
                r.arguments.unwrap_or_default(),
                r.mcp_session_id
            ),
        )
    }

    fn on_result(ctx: Context, r: mcp::McpRequest, result: String) -> Decision {
        probe(
            &ctx,
            format!(
                "mcp.on-result {} tool={:?} target={:?} read_only={:?} result={result}",
                r.method,
                r.tool,
                r.target,
                r.tool_info.map(|t| t.read_only)
            ),
        )
    }

    fn filter_tools(_ctx: Context, tools: Vec<mcp::ToolInfo>) -> Vec<String> {
        tools
            .into_iter()
            .filter(|t| t.destructive)
            .map(|t| t.name)
            .collect()
    }
}

impl mcp_listing::Guest for Probe {
    fn filter(_ctx: Context, entries: Vec<mcp_listing::Entry>) -> Vec<String> {
        entries
            .into_iter()
            .map(|e| {
                format!(
                    "{:?} {} name={} description={} mime={:?}",
                    e.kind, e.id, e.name, e.description, e.mime_type
                )
            })
            .collect()
    }
}

impl ssh::Guest for Probe {
    fn on_command(ctx: Context, c: ssh::SshCommand) -> Decision {
        probe(
            &ctx,
            format!("ssh.on-command {}@ {} pty={}", c.user, c.command, c.pty),
        )
    }
}
