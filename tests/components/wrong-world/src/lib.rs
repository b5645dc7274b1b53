//! `wrong-world`: a valid WebAssembly component that does not target the
//! `initialiser-component` world (it exports only `foo`), for the runtime's start-up check.

wit_bindgen::generate!({
    inline: "
        package test:wrong-world;

        world not-an-initialiser {
            export foo: func();
        }
    ",
});

struct NotAnInitialiser;

impl Guest for NotAnInitialiser {
    fn foo() {}
}

export!(NotAnInitialiser);
