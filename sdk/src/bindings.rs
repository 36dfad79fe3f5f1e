//! The one copy of the generated bindings for the shared interfaces
//! (`types` and `host`). Plugins map these interfaces here with `with`, so
//! every plugin and the SDK use the same Rust types.

wit_bindgen::generate!({
    inline: "
        package gatehouse:sdk;
        world sdk {
            import gatehouse:policy/types@0.1.0;
            import gatehouse:policy/host@0.1.0;
        }
    ",
    path: "../wit",
    world: "gatehouse:sdk/sdk",
    generate_all,
    additional_derives: [PartialEq, Eq],
});
