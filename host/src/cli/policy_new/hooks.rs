//! Per hook, the same small policy in each language, and the fixture that
//! checks it. Every skeleton makes the same decisions on the same fixture,
//! whatever its language. `@NAME@` is replaced by the policy's name.

pub struct HookTemplate {
    pub hook: &'static str,
    /// `Protocol::...` in Rust, `types.Protocol....` in Python, the tag in JS.
    pub protocol_rust: &'static str,
    pub protocol_py: &'static str,
    pub protocol_js: &'static str,
    pub summary: &'static str,
    pub rust_impl: &'static str,
    pub python_class: &'static str,
    pub js_export: &'static str,
    pub fixture: &'static str,
}

pub const HOOKS: &[HookTemplate] = &[
    HookTemplate {
        hook: "http",
        protocol_rust: "Http",
        protocol_py: "HTTP",
        protocol_js: "http",
        summary: "Denies DELETE unless the caller is in an allowed group; masks e-mail addresses in responses",
        rust_impl: r#"use bindings::http::{HttpRequest, HttpResponse};

impl bindings::http::Guest for Policy {
    fn on_request(ctx: Context, request: HttpRequest) -> Decision {
        let settings = match current_settings() {
            Ok(s) => s,
            Err(d) => return d,
        };
        if request.method.eq_ignore_ascii_case("DELETE")
            && !ctx.in_any_group(&settings.allow_groups)
        {
            return deny("DELETE needs one of the allowed groups");
        }
        allow()
    }

    fn on_response(_ctx: Context, _request: HttpRequest, _response: HttpResponse) -> Decision {
        mask([MaskRule::detector("email").redact()])
    }
}
"#,
        python_class: r#"class Http(exports.Http):
    def on_request(self, ctx, request):
        if request.method.upper() == "DELETE" and not _in_any(ctx, _settings()["allow_groups"]):
            return _decision(types.Verdict_Deny("DELETE needs one of the allowed groups"))
        return _decision(types.Verdict_Allow())

    def on_response(self, ctx, request, response):
        return _decision(types.Verdict_Mask([_detector("email")]))
"#,
        js_export: r#"export const http = {
  onRequest(ctx, request) {
    if (request.method.toUpperCase() === "DELETE" && !inAny(ctx, settings().allow_groups)) {
      return decision({ tag: "deny", val: "DELETE needs one of the allowed groups" });
    }
    return decision({ tag: "allow" });
  },
  onResponse(ctx, request, response) {
    return decision({ tag: "mask", val: [detector("email")] });
  },
};
"#,
        fixture: r#"version: 1
settings: {allow_groups: [ops]}
cases:
  - name: delete is refused
    hook: http.on-request
    event: {method: DELETE, path: /items/1}
    expect: {verdict: deny, reason_contains: allowed groups}
  - name: ops may delete
    hook: http.on-request
    context: {principal: {groups: [ops]}}
    event: {method: DELETE, path: /items/1}
    expect: {verdict: allow}
  - name: responses are masked
    hook: http.on-response
    event: {request: {method: GET, path: /users}, response: {status: 200}}
    expect:
      verdict: mask
      masks: [{detector: email}]
      masked_text: [{input: "to ann@example.com", output: "to [MASKED:email]"}]
"#,
    },
    HookTemplate {
        hook: "postgres",
        protocol_rust: "Postgres",
        protocol_py: "POSTGRES",
        protocol_js: "postgres",
        summary: "Denies DROP TABLE unless the caller is in an allowed group; masks the email column",
        rust_impl: r#"use bindings::postgres::{Column, Query, StatementKind};

impl bindings::postgres::Guest for Policy {
    fn on_query(ctx: Context, query: Query) -> Decision {
        let settings = match current_settings() {
            Ok(s) => s,
            Err(d) => return d,
        };
        let drops = query
            .statements
            .iter()
            .any(|s| s.kind == StatementKind::Drop);
        if drops && !ctx.in_any_group(&settings.allow_groups) {
            return deny("DROP needs one of the allowed groups");
        }
        allow()
    }

    fn on_result_columns(_ctx: Context, _query: Query, _columns: Vec<Column>) -> Decision {
        mask([MaskRule::column("email").redact()])
    }
}
"#,
        python_class: r#"class Postgres(exports.Postgres):
    def on_query(self, ctx, query):
        drops = any(s.kind == postgres.StatementKind.DROP for s in query.statements)
        if drops and not _in_any(ctx, _settings()["allow_groups"]):
            return _decision(types.Verdict_Deny("DROP needs one of the allowed groups"))
        return _decision(types.Verdict_Allow())

    def on_result_columns(self, ctx, query, columns):
        return _decision(types.Verdict_Mask([_column("email")]))
"#,
        js_export: r#"export const postgres = {
  onQuery(ctx, query) {
    const drops = query.statements.some((s) => s.kind === "drop");
    if (drops && !inAny(ctx, settings().allow_groups)) {
      return decision({ tag: "deny", val: "DROP needs one of the allowed groups" });
    }
    return decision({ tag: "allow" });
  },
  onResultColumns(ctx, query, columns) {
    return decision({ tag: "mask", val: [column("email")] });
  },
};
"#,
        fixture: r#"version: 1
settings: {allow_groups: [dba]}
cases:
  - name: drop is refused
    hook: postgres.on-query
    event: {sql: "DROP TABLE users"}
    expect: {verdict: deny, reason_contains: allowed groups}
  - name: a dba may drop
    hook: postgres.on-query
    context: {principal: {groups: [dba]}}
    event: {sql: "DROP TABLE users"}
    expect: {verdict: allow}
  - name: selects pass
    hook: postgres.on-query
    event: {sql: "SELECT id, email FROM users"}
    expect: {verdict: allow}
  - name: the email column is masked
    hook: postgres.on-result-columns
    event: {sql: "SELECT id, email FROM users", columns: [{name: id, type_name: int4}, {name: email}]}
    expect: {verdict: mask, masks: [{column: email}]}
"#,
    },
    HookTemplate {
        hook: "kubernetes",
        protocol_rust: "Kubernetes",
        protocol_py: "KUBERNETES",
        protocol_js: "kubernetes",
        summary: "Denies deleting namespaces unless the caller is in an allowed group",
        rust_impl: r#"use bindings::kubernetes::KubernetesRequest;

impl bindings::kubernetes::Guest for Policy {
    fn on_request(ctx: Context, request: KubernetesRequest) -> Decision {
        let settings = match current_settings() {
            Ok(s) => s,
            Err(d) => return d,
        };
        if request.verb == "delete"
            && request.resource == "namespaces"
            && !ctx.in_any_group(&settings.allow_groups)
        {
            return deny("deleting a namespace needs one of the allowed groups");
        }
        allow()
    }
}
"#,
        python_class: r#"class Kubernetes(exports.Kubernetes):
    def on_request(self, ctx, request):
        if request.verb == "delete" and request.resource == "namespaces" and not _in_any(ctx, _settings()["allow_groups"]):
            return _decision(types.Verdict_Deny("deleting a namespace needs one of the allowed groups"))
        return _decision(types.Verdict_Allow())
"#,
        js_export: r#"export const kubernetes = {
  onRequest(ctx, request) {
    if (request.verb === "delete" && request.resource === "namespaces" && !inAny(ctx, settings().allow_groups)) {
      return decision({ tag: "deny", val: "deleting a namespace needs one of the allowed groups" });
    }
    return decision({ tag: "allow" });
  },
};
"#,
        fixture: r#"version: 1
settings: {allow_groups: [ops]}
cases:
  - name: namespace delete is refused
    hook: kubernetes.on-request
    event: {verb: delete, resource: namespaces, name: prod}
    expect: {verdict: deny, reason_contains: namespace}
  - name: ops may delete a namespace
    hook: kubernetes.on-request
    context: {principal: {groups: [ops]}}
    event: {verb: delete, resource: namespaces, name: prod}
    expect: {verdict: allow}
  - name: listing pods passes
    hook: kubernetes.on-request
    event: {verb: list, resource: pods, namespace: default}
    expect: {verdict: allow}
"#,
    },
    HookTemplate {
        hook: "llm",
        protocol_rust: "Llm",
        protocol_py: "LLM",
        protocol_js: "llm",
        summary: "Denies preview models unless the caller is in an allowed group; masks e-mail addresses in completions",
        rust_impl: r#"use bindings::llm::{LlmRequest, LlmResponse};

impl bindings::llm::Guest for Policy {
    fn on_request(ctx: Context, request: LlmRequest) -> Decision {
        let settings = match current_settings() {
            Ok(s) => s,
            Err(d) => return d,
        };
        if request.model.contains("preview") && !ctx.in_any_group(&settings.allow_groups) {
            return deny("preview models need one of the allowed groups");
        }
        allow()
    }

    fn on_response(_ctx: Context, _request: LlmRequest, _response: LlmResponse) -> Decision {
        mask([MaskRule::detector("email").redact()])
    }
}
"#,
        python_class: r#"class Llm(exports.Llm):
    def on_request(self, ctx, request):
        if "preview" in request.model and not _in_any(ctx, _settings()["allow_groups"]):
            return _decision(types.Verdict_Deny("preview models need one of the allowed groups"))
        return _decision(types.Verdict_Allow())

    def on_response(self, ctx, request, response):
        return _decision(types.Verdict_Mask([_detector("email")]))
"#,
        js_export: r#"export const llm = {
  onRequest(ctx, request) {
    if (request.model.includes("preview") && !inAny(ctx, settings().allow_groups)) {
      return decision({ tag: "deny", val: "preview models need one of the allowed groups" });
    }
    return decision({ tag: "allow" });
  },
  onResponse(ctx, request, response) {
    return decision({ tag: "mask", val: [detector("email")] });
  },
};
"#,
        fixture: r#"version: 1
settings: {allow_groups: [research]}
cases:
  - name: preview models are refused
    hook: llm.on-request
    event: {model: gpt-5-preview, messages: [{role: user, text: hi}]}
    expect: {verdict: deny, reason_contains: preview}
  - name: research may use previews
    hook: llm.on-request
    context: {principal: {groups: [research]}}
    event: {model: gpt-5-preview, messages: [{role: user, text: hi}]}
    expect: {verdict: allow}
  - name: completions are masked
    hook: llm.on-response
    event: {request: {model: gpt-4o}, response: {model: gpt-4o, text: "mail ann@example.com"}}
    expect: {verdict: mask, masks: [{detector: email}]}
"#,
    },
    HookTemplate {
        hook: "mcp",
        protocol_rust: "Mcp",
        protocol_py: "MCP",
        protocol_js: "mcp",
        summary: "Denies destructive-looking tool calls and hides destructive tools unless the caller is in an allowed group",
        rust_impl: r#"use bindings::mcp::{McpRequest, ToolInfo};

impl bindings::mcp::Guest for Policy {
    fn on_request(ctx: Context, request: McpRequest) -> Decision {
        let settings = match current_settings() {
            Ok(s) => s,
            Err(d) => return d,
        };
        let tool = request.tool.as_deref().unwrap_or("");
        if tool.starts_with("delete") && !ctx.in_any_group(&settings.allow_groups) {
            return deny("delete tools need one of the allowed groups");
        }
        allow()
    }

    fn filter_tools(ctx: Context, tools: Vec<ToolInfo>) -> Vec<String> {
        let allowed = current_settings().is_ok_and(|s| ctx.in_any_group(&s.allow_groups));
        tools
            .into_iter()
            .filter(|t| t.destructive && !allowed)
            .map(|t| t.name)
            .collect()
    }
}
"#,
        python_class: r#"class Mcp(exports.Mcp):
    def on_request(self, ctx, request):
        tool = request.tool or ""
        if tool.startswith("delete") and not _in_any(ctx, _settings()["allow_groups"]):
            return _decision(types.Verdict_Deny("delete tools need one of the allowed groups"))
        return _decision(types.Verdict_Allow())

    def filter_tools(self, ctx, tools):
        allowed = _in_any(ctx, _settings()["allow_groups"])
        return [t.name for t in tools if t.destructive and not allowed]
"#,
        js_export: r#"export const mcp = {
  onRequest(ctx, request) {
    const tool = request.tool ?? "";
    if (tool.startsWith("delete") && !inAny(ctx, settings().allow_groups)) {
      return decision({ tag: "deny", val: "delete tools need one of the allowed groups" });
    }
    return decision({ tag: "allow" });
  },
  filterTools(ctx, tools) {
    const allowed = inAny(ctx, settings().allow_groups);
    return tools.filter((t) => t.destructive && !allowed).map((t) => t.name);
  },
};
"#,
        fixture: r#"version: 1
settings: {allow_groups: [ops]}
cases:
  - name: delete tools are refused
    hook: mcp.on-request
    event: {method: tools/call, tool: delete_file, arguments: {path: /etc/passwd}}
    expect: {verdict: deny, reason_contains: delete tools}
  - name: other tools pass
    hook: mcp.on-request
    event: {method: tools/call, tool: read_file, arguments: {path: README.md}}
    expect: {verdict: allow}
  - name: destructive tools are hidden
    hook: mcp.filter-tools
    event: {tools: [{name: read_file}, {name: delete_file, destructive: true}]}
    expect: {hidden_tools: [delete_file]}
  - name: ops see every tool
    hook: mcp.filter-tools
    context: {principal: {groups: [ops]}}
    event: {tools: [{name: read_file}, {name: delete_file, destructive: true}]}
    expect: {hidden_tools: []}
"#,
    },
    HookTemplate {
        hook: "ssh",
        protocol_rust: "Ssh",
        protocol_py: "SSH",
        protocol_js: "ssh",
        summary: "Denies sudo unless the caller is in an allowed group",
        rust_impl: r#"use bindings::ssh::SshCommand;

impl bindings::ssh::Guest for Policy {
    fn on_command(ctx: Context, command: SshCommand) -> Decision {
        let settings = match current_settings() {
            Ok(s) => s,
            Err(d) => return d,
        };
        if command.command.trim_start().starts_with("sudo")
            && !ctx.in_any_group(&settings.allow_groups)
        {
            return deny("sudo needs one of the allowed groups");
        }
        allow()
    }
}
"#,
        python_class: r#"class Ssh(exports.Ssh):
    def on_command(self, ctx, command):
        if command.command.lstrip().startswith("sudo") and not _in_any(ctx, _settings()["allow_groups"]):
            return _decision(types.Verdict_Deny("sudo needs one of the allowed groups"))
        return _decision(types.Verdict_Allow())
"#,
        js_export: r#"export const ssh = {
  onCommand(ctx, command) {
    if (command.command.trimStart().startsWith("sudo") && !inAny(ctx, settings().allow_groups)) {
      return decision({ tag: "deny", val: "sudo needs one of the allowed groups" });
    }
    return decision({ tag: "allow" });
  },
};
"#,
        fixture: r#"version: 1
settings: {allow_groups: [ops]}
cases:
  - name: sudo is refused
    hook: ssh.on-command
    event: {command: "sudo systemctl restart app"}
    expect: {verdict: deny, reason_contains: sudo}
  - name: ops may sudo
    hook: ssh.on-command
    context: {principal: {groups: [ops]}}
    event: {command: "sudo systemctl restart app"}
    expect: {verdict: allow}
"#,
    },
];

pub fn find(hook: &str) -> Option<&'static HookTemplate> {
    HOOKS.iter().find(|h| h.hook == hook)
}
