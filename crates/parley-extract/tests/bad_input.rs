//! Bad input, all in one place: every broken document gets a clear error (or
//! a warning) naming it, nothing panics, memory stays bounded by the limits,
//! and the other documents of a batch are still read and extracted.

use parley_extract::{Document, DocumentError, Extractor, Limits, read_documents, read_path};
use parley_kb::KnowledgeBase;
use std::io::Write;

/// A good article, to show the batch goes on around the bad ones.
const GOOD: &str = "date 2025-06-03\nDelegations meet in Istanbul\n\n\
    Russian and Ukrainian delegations held talks in Istanbul on Monday, hosted by Turkey.\n";

fn read(name: &str, bytes: &[u8]) -> Vec<Result<Document, DocumentError>> {
    read_documents(name, bytes, None, &Limits::default())
}

/// The single error of an input that must fail as a whole.
fn error(name: &str, bytes: &[u8]) -> DocumentError {
    let mut out = read(name, bytes);
    assert_eq!(out.len(), 1, "{name}: one result, got {out:?}");
    out.remove(0).expect_err("an error")
}

/// Reads a batch like a caller would: every input, keeping going after errors.
fn batch(inputs: &[(&str, Vec<u8>)]) -> (Vec<Document>, Vec<DocumentError>) {
    let (mut docs, mut errors) = (Vec::new(), Vec::new());
    for (name, bytes) in inputs {
        for r in read(name, bytes) {
            match r {
                Ok(d) => docs.push(d),
                Err(e) => errors.push(e),
            }
        }
    }
    (docs, errors)
}

#[test]
fn binary_empty_and_invalid_utf8_are_named_errors() {
    let e = error("photo.jpg", b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\x01");
    assert_eq!(e.name, "photo.jpg");
    assert!(e.reason.contains("binary"), "{e}");
    for empty in [&b""[..], b"   \n\t\n", b"\xEF\xBB\xBF"] {
        let e = error("dir/empty.txt", empty);
        assert_eq!(e.name, "empty.txt");
        assert!(e.reason.contains("empty"), "{e}");
    }
    // Mostly undecodable: refused, naming the document and the cause.
    let garbage: Vec<u8> = (0..400).map(|i| 0x80 + (i % 60) as u8).collect();
    let e = error("noise.txt", &garbage);
    assert!(e.reason.contains("UTF-8"), "{e}");
    // A stray bad byte in real text: read, with a warning.
    let mut raw = GOOD.as_bytes().to_vec();
    raw.insert(40, 0xFF);
    let doc = read("stray.txt", &raw).remove(0).expect("readable");
    assert!(
        doc.warnings.iter().any(|w| w.contains("UTF-8")),
        "{:?}",
        doc.warnings
    );
}

#[test]
fn declared_encodings_are_decoded_and_others_refused() {
    // Latin-1 declared in the page.
    let mut raw = b"<html><head><meta charset=\"iso-8859-1\"></head><body><p>Erdo".to_vec();
    raw.push(0xF0); // 'ð' in Latin-1
    raw.extend_from_slice(b"an hosted the talks.</p></body></html>");
    let doc = read("latin1.html", &raw).remove(0).expect("decoded");
    assert!(doc.text.contains("Erdoðan hosted"), "{}", doc.text);
    // UTF-16 with a byte-order mark, both byte orders.
    for little in [true, false] {
        let mut raw = if little {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for unit in GOOD.encode_utf16() {
            raw.extend(if little {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        let doc = read("utf16.txt", &raw)
            .remove(0)
            .expect("UTF-16 with BOM reads");
        assert!(doc.text.contains("held talks in Istanbul"), "{}", doc.text);
    }
    // UTF-16 without a mark is not guessed: a clear error.
    let raw: Vec<u8> = GOOD.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let e = error("utf16-nobom.txt", &raw);
    assert!(e.reason.contains("binary"), "{e}");
    // A broken UTF-16 body (lone surrogate) despite the mark.
    let e = error("bad16.txt", &[0xFF, 0xFE, 0x00, 0xD8, 0x41, 0x00]);
    assert!(e.reason.contains("UTF-16"), "{e}");
}

#[test]
fn fifty_megabytes_are_refused_before_reading() {
    let dir = std::env::temp_dir().join(format!("parley-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("huge.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let line = "Talks were held in Doha on Monday. ".repeat(30);
        let mut written = 0;
        while written < 50 * 1024 * 1024 {
            f.write_all(line.as_bytes()).unwrap();
            written += line.len();
        }
    }
    let limits = Limits::default();
    assert!(limits.max_bytes < 50 * 1024 * 1024);
    let out = read_path(&path, None, &limits);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.len(), 1);
    let e = out[0].as_ref().unwrap_err();
    assert_eq!(e.name, "huge.txt");
    assert!(e.reason.contains("too large"), "{e}");

    // The same bytes in memory are refused too, with a configurable limit.
    let small = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    let out = read_documents("big.txt", &[b'a'; 1001], None, &small);
    assert!(out[0].as_ref().unwrap_err().reason.contains("1001 bytes"));
}

#[test]
fn feed_with_five_thousand_items_is_capped_and_says_so() {
    let mut raw =
        String::from("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Wire</title>");
    for i in 0..5000 {
        raw.push_str(&format!(
            "<item><title>Item {i}</title><guid>wire-{i}</guid>\
             <pubDate>Mon, 02 Jun 2025 10:00:00 +0000</pubDate>\
             <description>Envoys met in Doha.</description></item>"
        ));
    }
    raw.push_str("</channel></rss>");
    let limits = Limits {
        max_feed_items: 300,
        ..Limits::default()
    };
    let out = read_documents("wire.xml", raw.as_bytes(), None, &limits);
    let docs: Vec<&Document> = out.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(docs.len(), 300);
    assert_eq!(docs[0].name, "wire-0");
    let errors: Vec<&DocumentError> = out.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].name, "wire.xml");
    assert!(errors[0].reason.contains("5000 items"), "{}", errors[0]);
}

#[test]
fn malformed_html_is_read_as_far_as_it_goes() {
    let raw = b"<html><head><title>Talks</title><body><div><p>Qatari mediators said M23 and Congo \
        held talks in Doha on Saturday.<p>Unclosed <b>bold <i>and</div></span></html";
    let doc = read("broken.html", raw)
        .remove(0)
        .expect("HTML parsers recover");
    assert!(doc.text.contains("held talks in Doha"), "{}", doc.text);
    assert!(!doc.text.contains('<'), "{}", doc.text);
}

#[test]
fn malformed_xml_names_the_feed() {
    let e = error(
        "cut.xml",
        b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><item><title>Talks</ti",
    );
    assert_eq!(e.name, "cut.xml");
    assert!(e.reason.contains("malformed"), "{e}");
}

#[test]
fn external_entities_are_never_resolved() {
    // A secret the entity would pull in if it were ever resolved.
    let dir = std::env::temp_dir().join(format!("parley-xxe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-TOKEN").unwrap();
    let raw = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE rss [<!ENTITY leak SYSTEM \"file://{}\">]>\
         <rss version=\"2.0\"><channel><title>W</title><item><guid>x1</guid>\
         <title>Talks &leak; in Doha</title><description>Envoys met &leak;.</description>\
         </item></channel></rss>",
        secret.display()
    );
    let out = read("xxe.xml", raw.as_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
    for r in &out {
        match r {
            Ok(d) => assert!(!d.text.contains("TOP-SECRET"), "{}", d.text),
            Err(e) => {
                assert_eq!(e.name, "xxe.xml");
                assert!(e.reason.contains("entit"), "{e}");
                assert!(!e.reason.contains("TOP-SECRET"));
            }
        }
    }
    assert!(!out.is_empty());
}

#[test]
fn a_batch_goes_on_around_bad_documents() {
    let inputs = vec![
        ("bin.dat", b"\0\x01\x02\x03binary".to_vec()),
        ("good.txt", GOOD.as_bytes().to_vec()),
        ("empty.txt", Vec::new()),
        (
            "cut.xml",
            b"<?xml version=\"1.0\"?><rss><channel><item>".to_vec(),
        ),
        ("good2.txt", GOOD.replace("Istanbul", "Doha").into_bytes()),
    ];
    let (docs, errors) = batch(&inputs);
    let names: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["good.txt", "good2.txt"]);
    let failed: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(failed, ["bin.dat", "empty.txt", "cut.xml"]);
    // Errors print with the document's name first.
    assert!(errors[0].to_string().starts_with("bin.dat: "));
    let ex = Extractor::new(&KnowledgeBase::bundled().expect("kb"));
    for d in &docs {
        assert!(
            !ex.extract(d).events.is_empty(),
            "{} yields its event",
            d.name
        );
    }
}
