//! The [`export_policy!`](crate::export_policy) macro.

/// Generates the bindings for a policy and exports it.
///
/// ```
/// use gatehouse_sdk::prelude::*;
///
/// // In a plugin crate under `plugins/`, `wit` would be "../../wit".
/// gatehouse_sdk::export_policy!(MyPolicy, wit: "../wit", hooks: [http]);
///
/// struct MyPolicy;
///
/// // The component exports `meta` and exactly the listed hooks: the compiler
/// // asks for `bindings::meta::Guest` and one `Guest` per hook.
/// impl bindings::meta::Guest for MyPolicy {
///     fn describe() -> bindings::meta::Description {
///         bindings::meta::Description {
///             name: "my-policy".into(),
///             version: "0.1.0".into(),
///             summary: "Allows everything".into(),
///             protocols: vec![Protocol::Http],
///             settings_schema: String::new(),
///         }
///     }
///     fn validate_config(_settings: String) -> Result<(), String> {
///         Ok(())
///     }
/// }
///
/// impl bindings::http::Guest for MyPolicy {
///     fn on_request(_: Context, _: bindings::http::HttpRequest) -> Decision {
///         allow()
///     }
///     fn on_response(_: Context, _: bindings::http::HttpRequest, _: bindings::http::HttpResponse) -> Decision {
///         allow()
///     }
/// }
/// # fn main() {
/// use bindings::meta::Guest as _;
/// assert_eq!(MyPolicy::describe().name, "my-policy");
/// # }
/// ```
///
/// - `MyPolicy`: an identifier naming a type that implements
///   `bindings::meta::Guest` and the `Guest` trait of each listed hook.
/// - `wit`: the folder holding the `gatehouse:policy` WIT, relative to the
///   plugin crate's `Cargo.toml`.
/// - `hooks`: any of `http`, `postgres`, `kubernetes`, `llm`, `mcp`,
///   `mcp_listing` (the `mcp-listing` interface: resources, templates and
///   prompts filtered), `ssh`. The component exports `meta` and exactly these.
///
/// It defines, where it is invoked (use the crate root):
/// - `mod bindings` with `bindings::meta` and one module per hook
///   (`bindings::http`, ...), holding the `Guest` traits and hook types;
/// - hidden `__gatehouse_*` modules with the generated code.
///
/// Shared types (`Context`, `Decision`, ...) come from
/// [`gatehouse_sdk::types`](crate::types) and the host imports from the SDK,
/// so the plugin crate needs no `wit-bindgen` dependency (it must depend on
/// the SDK under the name `gatehouse_sdk`).
///
/// For `http`, natively (not `wasm32`) it also adds
/// `From<testing::HttpRequestFixture>` / `From<testing::HttpResponseFixture>`
/// for the generated `HttpRequest` / `HttpResponse`.
///
/// How: one `wit_bindgen::generate!` for the world `guest` (meta) and one per
/// hook, each with its own world; `wasm-component-ld` merges the type
/// sections into one component world.
#[macro_export]
macro_rules! export_policy {
    ($policy:ident, wit: $wit:literal, hooks: [$($hook:ident),* $(,)?] $(,)?) => {
        #[doc(hidden)]
        #[allow(clippy::all, clippy::pedantic, missing_docs, dead_code, unused)]
        mod __gatehouse_meta {
            ::gatehouse_sdk::wit_bindgen::generate!({
                world: "gatehouse:policy/guest@0.1.0",
                path: $wit,
                with: {
                    "gatehouse:policy/types@0.1.0": ::gatehouse_sdk::types,
                    "gatehouse:policy/host@0.1.0": ::gatehouse_sdk::host,
                },
                runtime_path: "::gatehouse_sdk::wit_bindgen::rt",
                export_macro_name: "__gatehouse_export_meta",
            });
        }
        // Natively (unit tests) nothing is exported: the export names are not
        // valid native symbol names.
        #[cfg(target_arch = "wasm32")]
        __gatehouse_meta::__gatehouse_export_meta!($policy with_types_in __gatehouse_meta);

        $( $crate::__gatehouse_hook!($hook, $policy, $wit); )*

        /// Generated bindings: `meta` and the exported hooks.
        #[allow(unused_imports)]
        pub mod bindings {
            pub use super::__gatehouse_meta::exports::gatehouse::policy::meta;
            $( $crate::__gatehouse_hook_use!($hook); )*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gatehouse_hook_generate {
    ($module:ident, $package:literal, $world:literal, $export_macro:ident, $wit:literal, $policy:ident) => {
        #[doc(hidden)]
        #[allow(clippy::all, clippy::pedantic, missing_docs, dead_code, unused)]
        mod $module {
            ::gatehouse_sdk::wit_bindgen::generate!({
                inline: $package,
                world: $world,
                path: $wit,
                with: {
                    "gatehouse:policy/types@0.1.0": ::gatehouse_sdk::types,
                },
                runtime_path: "::gatehouse_sdk::wit_bindgen::rt",
                export_macro_name: "__gatehouse_export_hook",
            });
        }
        #[cfg(target_arch = "wasm32")]
        $module::__gatehouse_export_hook!($policy with_types_in $module);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gatehouse_hook {
    (http, $policy:ident, $wit:literal) => {
        $crate::__gatehouse_hook_generate!(
            __gatehouse_hook_http,
            "package gatehouse:plugin-http; world http-hook { export gatehouse:policy/http@0.1.0; }",
            "gatehouse:plugin-http/http-hook",
            __gatehouse_export_hook,
            $wit,
            $policy
        );

        #[cfg(not(target_arch = "wasm32"))]
        impl ::core::convert::From<$crate::testing::HttpRequestFixture>
            for __gatehouse_hook_http::exports::gatehouse::policy::http::HttpRequest
        {
            fn from(f: $crate::testing::HttpRequestFixture) -> Self {
                Self {
                    method: f.method,
                    scheme: f.scheme,
                    authority: f.authority,
                    path: f.path,
                    query: f.query,
                    headers: f.headers,
                    body: f.body,
                    body_complete: f.body_complete,
                }
            }
        }

        #[cfg(not(target_arch = "wasm32"))]
        impl ::core::convert::From<$crate::testing::HttpResponseFixture>
            for __gatehouse_hook_http::exports::gatehouse::policy::http::HttpResponse
        {
            fn from(f: $crate::testing::HttpResponseFixture) -> Self {
                Self {
                    status: f.status,
                    headers: f.headers,
                }
            }
        }
    };
    (postgres, $policy:ident, $wit:literal) => {
        $crate::__gatehouse_hook_generate!(
            __gatehouse_hook_postgres,
            "package gatehouse:plugin-postgres; world postgres-hook { export gatehouse:policy/postgres@0.1.0; }",
            "gatehouse:plugin-postgres/postgres-hook",
            __gatehouse_export_hook,
            $wit,
            $policy
        );
    };
    (kubernetes, $policy:ident, $wit:literal) => {
        $crate::__gatehouse_hook_generate!(
            __gatehouse_hook_kubernetes,
            "package gatehouse:plugin-kubernetes; world kubernetes-hook { export gatehouse:policy/kubernetes@0.1.0; }",
            "gatehouse:plugin-kubernetes/kubernetes-hook",
            __gatehouse_export_hook,
            $wit,
            $policy
        );
    };
    (llm, $policy:ident, $wit:literal) => {
        $crate::__gatehouse_hook_generate!(
            __gatehouse_hook_llm,
            "package gatehouse:plugin-llm; world llm-hook { export gatehouse:policy/llm@0.1.0; }",
            "gatehouse:plugin-llm/llm-hook",
            __gatehouse_export_hook,
            $wit,
            $policy
        );
    };
    (mcp, $policy:ident, $wit:literal) => {
        $crate::__gatehouse_hook_generate!(
            __gatehouse_hook_mcp,
            "package gatehouse:plugin-mcp; world mcp-hook { export gatehouse:policy/mcp@0.1.0; }",
            "gatehouse:plugin-mcp/mcp-hook",
            __gatehouse_export_hook,
            $wit,
            $policy
        );
    };
    (mcp_listing, $policy:ident, $wit:literal) => {
        $crate::__gatehouse_hook_generate!(
            __gatehouse_hook_mcp_listing,
            "package gatehouse:plugin-mcp-listing; world mcp-listing-hook { export gatehouse:policy/mcp-listing@0.1.0; }",
            "gatehouse:plugin-mcp-listing/mcp-listing-hook",
            __gatehouse_export_hook,
            $wit,
            $policy
        );
    };
    (ssh, $policy:ident, $wit:literal) => {
        $crate::__gatehouse_hook_generate!(
            __gatehouse_hook_ssh,
            "package gatehouse:plugin-ssh; world ssh-hook { export gatehouse:policy/ssh@0.1.0; }",
            "gatehouse:plugin-ssh/ssh-hook",
            __gatehouse_export_hook,
            $wit,
            $policy
        );
    };
    ($other:ident, $policy:ident, $wit:literal) => {
        ::core::compile_error!(concat!(
            "unknown Gatehouse hook `",
            stringify!($other),
            "`: expected http, postgres, kubernetes, llm, mcp, mcp_listing or ssh"
        ));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gatehouse_hook_use {
    (http) => {
        pub use super::__gatehouse_hook_http::exports::gatehouse::policy::http;
    };
    (postgres) => {
        pub use super::__gatehouse_hook_postgres::exports::gatehouse::policy::postgres;
    };
    (kubernetes) => {
        pub use super::__gatehouse_hook_kubernetes::exports::gatehouse::policy::kubernetes;
    };
    (llm) => {
        pub use super::__gatehouse_hook_llm::exports::gatehouse::policy::llm;
    };
    (mcp) => {
        pub use super::__gatehouse_hook_mcp::exports::gatehouse::policy::mcp;
    };
    (mcp_listing) => {
        pub use super::__gatehouse_hook_mcp_listing::exports::gatehouse::policy::mcp_listing;
    };
    (ssh) => {
        pub use super::__gatehouse_hook_ssh::exports::gatehouse::policy::ssh;
    };
    ($other:ident) => {};
}
