//! Property tests for the `.htaccess` reader (`htgate_syntax::htaccess::parse`):
//! it never panics on any input, and `parse` → `Display` → `parse` gives
//! the same tree (spans aside) for generated, well-formed files.

use htgate_syntax::htaccess::{parse, Arg, Directive, File, Node, Section};
use proptest::prelude::*;

/// A tree without positions, to compare two parses of different text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bare {
    Directive {
        name: String,
        raw_args: String,
        args: Vec<(String, bool)>,
    },
    Section {
        name: String,
        raw_args: String,
        args: Vec<(String, bool)>,
        closed: bool,
        body: Vec<Bare>,
    },
}

fn bare_args(args: &[Arg]) -> Vec<(String, bool)> {
    args.iter().map(|a| (a.text.clone(), a.quoted)).collect()
}

/// Strips spans (the only thing that may differ after re-printing).
fn strip(nodes: &[Node]) -> Vec<Bare> {
    nodes
        .iter()
        .map(|n| match n {
            Node::Directive(Directive {
                name,
                raw_args,
                args,
                ..
            }) => Bare::Directive {
                name: name.clone(),
                raw_args: raw_args.clone(),
                args: bare_args(args),
            },
            Node::Section(Section {
                name,
                raw_args,
                args,
                body,
                closed,
                ..
            }) => Bare::Section {
                name: name.clone(),
                raw_args: raw_args.clone(),
                args: bare_args(args),
                closed: *closed,
                body: strip(body),
            },
        })
        .collect()
}

fn has_errors(diags: &[htgate_syntax::htaccess::Diagnostic]) -> bool {
    diags.iter().any(|d| d.is_error())
}

/// Text made of the characters that matter to the reader.
fn htaccess_ish() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"</".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\\\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"#".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\xff".to_vec()),
        Just("\u{e9}".as_bytes().to_vec()),
        Just(b"Files".to_vec()),
        Just(b"IfModule".to_vec()),
        Just(b"RewriteRule".to_vec()),
        Just(b"a".to_vec()),
        Just(b"${X}".to_vec()),
    ];
    prop::collection::vec(fragment, 0..80).prop_map(|v| v.concat())
}

/// A directive or section name: no blanks, quotes, `<`, `>`, `#`, `\`.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_.-]{0,11}"
}

/// One argument as written, unquoted or quoted (with escapes inside).
fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9^$./(){}\\[\\]%=!,|*+?-]{1,8}",
        "[A-Za-z0-9 ^$./%=!<-]{0,8}".prop_map(|s| format!("\"{s}\"")),
        "[A-Za-z0-9 ^$./%=!\"-]{0,8}".prop_map(|s| format!("'{s}'")),
        "[a-z ]{0,4}".prop_map(|s| format!("\"{s}\\\"{s}\"")),
        "[a-z]{1,4}".prop_map(|s| format!("{s}\\\\{s}")),
    ]
}

fn args() -> impl Strategy<Value = String> {
    prop::collection::vec(arg(), 0..4).prop_map(|v| v.join(" "))
}

/// A generated file, as text; every section closed.
#[derive(Debug, Clone)]
enum Gen {
    Directive(String, String),
    Section(String, String, Vec<Gen>),
}

fn gen_node() -> impl Strategy<Value = Gen> {
    let leaf = (name(), args()).prop_map(|(n, a)| Gen::Directive(n, a));
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            (name(), args()).prop_map(|(n, a)| Gen::Directive(n, a)),
            (name(), args(), prop::collection::vec(inner, 0..5))
                .prop_map(|(n, a, body)| Gen::Section(n, a, body)),
        ]
    })
}

fn render(nodes: &[Gen], depth: usize, out: &mut String) {
    let pad = " ".repeat(depth * 2);
    for node in nodes {
        match node {
            Gen::Directive(n, a) => out.push_str(&format!("{pad}{n} {a}\n")),
            Gen::Section(n, a, body) => {
                out.push_str(&format!("{pad}<{n} {a}>\n"));
                render(body, depth + 1, out);
                // Closing tags in another case, to exercise the comparison.
                out.push_str(&format!("{pad}</{}>\n", n.to_ascii_uppercase()));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_htaccess_ish_text(bytes in htaccess_ish()) {
        let (file, _) = parse(&bytes);
        // Whatever was read can be printed and read again.
        let _ = parse(file.to_string().as_bytes());
    }

    #[test]
    fn round_trip_through_display(nodes in prop::collection::vec(gen_node(), 0..6)) {
        let mut src = String::new();
        render(&nodes, 0, &mut src);
        let (first, diags) = parse(src.as_bytes());
        prop_assert!(!has_errors(&diags), "{:?}\n{}", diags, src);
        let printed = first.to_string();
        let (second, diags) = parse(printed.as_bytes());
        prop_assert!(!has_errors(&diags), "{:?}\n{}", diags, printed);
        prop_assert_eq!(strip(&first.nodes), strip(&second.nodes));
        prop_assert_eq!(count(&first), nodes_count(&nodes));
    }

    #[test]
    fn round_trip_of_any_clean_parse(bytes in htaccess_ish()) {
        // Any file that reads without errors prints back to the same tree,
        // provided its names are plain words: `Display` prints names as
        // they were read (quotes and escapes already resolved, a trailing
        // `>` already removed), and a trailing backslash at end of file
        // would become a continuation once a newline is printed after it.
        let (first, diags) = parse(&bytes);
        if has_errors(&diags) || !printable(&first.nodes) {
            return Ok(());
        }
        let printed = first.to_string();
        let (second, _) = parse(printed.as_bytes());
        prop_assert_eq!(strip(&first.nodes), strip(&second.nodes), "{}", printed);
    }

    #[test]
    fn spans_point_into_the_text(bytes in htaccess_ish()) {
        let (file, diags) = parse(&bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut spans = Vec::new();
        collect_spans(&file.nodes, &mut spans);
        spans.extend(diags.iter().map(|d| d.span));
        for span in spans {
            let end = span.offset + span.len;
            prop_assert!(end <= text.len(), "{:?} past {}", span, text.len());
            prop_assert!(text.is_char_boundary(span.offset) && text.is_char_boundary(end));
            let before = &text[..span.offset];
            let line = before.matches('\n').count() as u32 + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let col = text[line_start..span.offset].chars().count() as u32 + 1;
            prop_assert_eq!((span.line, span.col), (line, col), "{:?}", span);
        }
    }

    #[test]
    fn continuations_do_not_change_words(
        name in name(),
        parts in prop::collection::vec("[a-z]{1,6}", 1..6),
    ) {
        // `A p1 \<LF>  p2 ...` reads like `A p1   p2 ...`.
        let joined = format!("{name} {}\n", parts.join(" \\\n  "));
        let plain = format!("{name} {}\n", parts.join("   "));
        let (a, _) = parse(joined.as_bytes());
        let (b, _) = parse(plain.as_bytes());
        prop_assert_eq!(strip(&a.nodes), strip(&b.nodes));
    }
}

/// Names that `Display` prints back as they were written (see
/// `round_trip_of_any_clean_parse`).
fn printable(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| {
        let (name, raw_args) = match n {
            Node::Directive(d) => (&d.name, &d.raw_args),
            Node::Section(s) => (&s.name, &s.raw_args),
        };
        let plain = !name.is_empty()
            && !name.starts_with('#')
            && !name.ends_with('>')
            && !name.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
        let body_ok = match n {
            Node::Section(s) => printable(&s.body),
            Node::Directive(_) => true,
        };
        plain && !raw_args.ends_with('\\') && body_ok
    })
}

fn collect_spans(nodes: &[Node], out: &mut Vec<htgate_syntax::htaccess::Span>) {
    for n in nodes {
        match n {
            Node::Directive(d) => {
                out.push(d.span);
                out.push(d.args_span);
                out.extend(d.args.iter().map(|a| a.span));
            }
            Node::Section(s) => {
                out.push(s.span);
                out.push(s.args_span);
                out.extend(s.args.iter().map(|a| a.span));
                collect_spans(&s.body, out);
            }
        }
    }
}

fn count(file: &File) -> usize {
    fn walk(nodes: &[Node]) -> usize {
        nodes
            .iter()
            .map(|n| match n {
                Node::Directive(_) => 1,
                Node::Section(s) => 1 + walk(&s.body),
            })
            .sum()
    }
    walk(&file.nodes)
}

fn nodes_count(nodes: &[Gen]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Gen::Directive(..) => 1,
            Gen::Section(_, _, body) => 1 + nodes_count(body),
        })
        .sum()
}

#[test]
fn strip_ignores_spans_only() {
    let (a, _) = parse(b"A b\n<S x>\nC\n</S>\n");
    let (b, _) = parse(b"\n\n  A   b\n   <S   x  >\n C\n</s>\n");
    assert_eq!(strip(&a.nodes), strip(&b.nodes));
    let (c, _) = parse(b"A c\n");
    assert_ne!(strip(&a.nodes), strip(&c.nodes));
}
