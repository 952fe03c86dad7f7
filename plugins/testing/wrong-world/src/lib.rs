//! Test plugin: a valid component that exports `route` with the wrong signature, so it matches
//! none of Switchyard's worlds.
wit_bindgen::generate!({
    inline: "
        package test:wrong;
        world wrong {
            export route: func(x: u32) -> u32;
        }
    ",
});
struct Wrong;
impl Guest for Wrong {
    fn route(x: u32) -> u32 {
        x + 1
    }
}
export!(Wrong);
