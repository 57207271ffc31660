//! Go's own `net/url` test tables (`url_test.go`, Go 1.26), plus the forms the WHATWG
//! parser judges differently.

use super::*;

fn request_uri_ok(raw: &str) -> bool {
    parse_request_uri(raw).is_ok()
}

#[test]
fn parse_request_uri_agrees_with_go_on_its_own_table() {
    let valid = [
        "http://foo.com",
        "http://foo.com/",
        "http://foo.com/path",
        "/",
        "//not.a.user@not.a.host/just/a/path",
        "//not.a.user@%66%6f%6f.com/just/a/path/also",
        "*",
        "http://192.168.0.1/",
        "http://192.168.0.1:8080/",
        "http://[fe80::1]/",
        "http://[fe80::1]:8080/",
        "http://[fe80::1%25en0]/",
        "http://[fe80::1%25en0]:8080/",
        "http://[fe80::1%25%65%6e%301-._~]/",
        "http://[fe80::1%25%65%6e%301-._~]:8080/",
        "https://[1:2:3:4:5:6:7:8]",
        "https://[2001:db8::a:b:c:d]",
        "https://[fe80::abc:def%254]",
        "https://[fe80::1%25eth0]/path?query=1",
        "https://[::ffff:192.0.2.1]",
    ];
    for raw in valid {
        assert!(request_uri_ok(raw), "{raw} should parse");
    }
    let invalid = [
        "foo.html",
        "../dir/",
        " http://foo.com",
        "http://192.168.0.%31/",
        "http://192.168.0.%31:8080/",
        "http://[fe80::%31]/",
        "http://[fe80::%31%25en0]/",
        "http://[fe80::1%en0]/",
        "https://[:1] ",
        "https://[1:2:3:4:5:6:7:8:9]",
        "https://[1::1::1]",
        "https://[1:2:3:]",
        "https://[ffff::127.0.0.4000]",
        "https://[0:0::test.com]:80",
        "https://[2001:db8::test.com]",
        "https://[test.com]",
        "https://1:2:3:4:5:6:7:8",
        "https://1:2:3:4:5:6:7:8:80",
        "https://example.com:80:",
    ];
    for raw in invalid {
        assert!(!request_uri_ok(raw), "{raw} should not parse");
    }
}

#[test]
fn parse_reference_agrees_with_go_on_its_error_table() {
    let ok = [
        "http://[::1]",
        "http://[::1]:80",
        "http://[::1]/",
        "http://[::1%25en0]",
        "http://[::1]:",
        "http://x:",
        "http://[::1%25%41]",
        "http://[::1]/%48",
        "ahttp://foo.com",
        "cache_object/:foo/bar",
        "http://[::ffff:192.168.0.1]/",
        "http://[::ffff:c0a8:1]/",
    ];
    for raw in ok {
        assert!(parse_reference(raw).is_ok(), "{raw} should parse");
    }
    let bad = [
        "http://[::1]:namedport",
        "http://x:namedport",
        "http://[::1]a",
        "http://[::1]%23",
        "http://[::1]:%38%30",
        "http://[%10::1]",
        "http://%41:8080/",
        "mysql://x@y(z:123)/foo",
        " http://foo.com",
        "ht tp://foo.com",
        "1http://foo.com",
        "http://a b.com/",
        "cache_object://foo",
        "cache_object:foo",
        "http://[192.168.0.1]/",
        "http://[::ffff:192.168.0.1000]/",
        "http://[not-an-ip]/",
        "http://[fe80::1%foo]/",
        "http://[fe80::1",
        "http://fe80::1]/",
        "http://example.com[::1]",
        "http://[::1",
        "http://.[::1]",
        "http:// [::1]",
    ];
    for raw in bad {
        assert!(parse_reference(raw).is_err(), "{raw} should not parse");
    }
}

#[test]
fn forms_the_whatwg_parser_judges_differently() {
    // Go accepts: an empty authority, no `//` at all (opaque), any number of port digits.
    for raw in [
        "https:///ews",
        "https:/ews",
        "https:mail.contoso.com",
        "https://mail.contoso.com:70000/ews",
        "https://mail.contoso.com:/ews",
        "https://%C3%A9.contoso.com/",
        "HTTPS://Mail.Contoso.com/",
        // Rootless after the scheme: opaque, with no host at all.
        "https:\\\\mail.contoso.com",
    ] {
        assert!(request_uri_ok(raw), "{raw} should parse");
    }
    // Go refuses: a backslash in the host, bad escapes, %-encoded ASCII in a host,
    // control bytes anywhere (a trailing newline), spaces in the host.
    for raw in [
        "https://mail.contoso.com\\ews",
        "https://mail.contoso.com/%zz",
        "https://mail.contoso.com/%4",
        "https://%6dail.contoso.com/",
        "https://mail.contoso.com/ews\n",
        "https://mail.contoso.com/\tews",
        "https://mail contoso.com/",
        "https://mail.contoso.com:443:443/",
    ] {
        assert!(!request_uri_ok(raw), "{raw:?} should not parse");
    }
}

#[test]
fn accessors_follow_go() {
    let url = parse_request_uri("HTTPS://user:pw@Mail.Contoso.com:70000/a%2fb?x=1&x=2&y").unwrap();
    assert_eq!(url.scheme, b"https");
    assert_eq!(url.host, b"Mail.Contoso.com:70000");
    assert_eq!(url.hostname(), b"Mail.Contoso.com");
    assert_eq!(url.port(), b"70000");
    assert_eq!(url.path, b"/a/b");
    assert_eq!(url.escaped_path(), b"/a%2fb");
    let query = url.query();
    assert_eq!(query[&b"x".to_vec()], vec![b"1".to_vec(), b"2".to_vec()]);
    assert_eq!(query[&b"y".to_vec()], vec![Vec::<u8>::new()]);

    let ipv6 = parse_request_uri("http://[fe80::1%25en0]:8080/").unwrap();
    assert_eq!(ipv6.hostname(), b"fe80::1%en0");
    assert_eq!(ipv6.port(), b"8080");
    let empty = parse_request_uri("https:///ews").unwrap();
    assert_eq!(
        (empty.hostname(), empty.path.as_slice()),
        (&b""[..], &b"/ews"[..])
    );
    let opaque = parse_request_uri("https:mail.contoso.com").unwrap();
    assert_eq!(
        (opaque.hostname(), opaque.opaque.as_slice()),
        (&b""[..], &b"mail.contoso.com"[..])
    );
}

#[test]
fn a_fragment_is_cut_by_parse_but_part_of_the_path_for_a_request_uri() {
    let request = parse_request_uri("https://a.example/x#frag").unwrap();
    assert_eq!(request.path, b"/x#frag");
    let reference = parse_reference("https://a.example/x#frag").unwrap();
    assert_eq!(reference.path, b"/x");
    assert!(parse_reference("https://a.example/x#%zz").is_err());
}
