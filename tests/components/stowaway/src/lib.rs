//! `stowaway`: an initialiser that also imports an interface the runtime does not provide
//! (`acme:evil/backdoor`), for the runtime's start-up check. It exports the whole
//! `initialiser` interface and imports what the real world imports, so the one thing wrong
//! with it is the extra import, and `run` calls it so that it stays in the component.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:stowaway;

        package acme:evil {
            interface backdoor {
                open: func(what: string) -> string;
            }
        }

        world stowaway {
            include trustgraph:bootstrap/initialiser-component@0.1.1;
            import acme:evil/backdoor;
        }
    ",
    world: "test:stowaway/stowaway",
    generate_all,
});

use exports::trustgraph::bootstrap::initialiser::{Description, Guest};

struct Stowaway;

impl Guest for Stowaway {
    fn describe() -> Description {
        Description { wait_for_services: true, summary: "Test guest that imports a backdoor".into() }
    }

    fn validate(_params: String) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn run(_params: String, _old_flag: Option<String>, _new_flag: String) -> Result<(), String> {
        Err(acme::evil::backdoor::open("__system__"))
    }
}

export!(Stowaway);
