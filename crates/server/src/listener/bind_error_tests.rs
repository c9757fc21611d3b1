//! Tests of [`super::bind_error`]'s messages.

use super::*;

#[test]
fn a_busy_port_says_how_to_choose_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let e = std::net::TcpListener::bind(addr).expect_err("busy");
    let text = bind_error(addr, &e, "--http ADDR").to_string();
    assert!(
        text.starts_with(&format!("cannot listen on {addr}: ")),
        "{text}"
    );
    assert!(
        text.contains("choose a free port with --http ADDR"),
        "{text}"
    );
}
