//! etcdctl's `-w table` output: the layout of the Go `tablewriter` package as etcdctl
//! configures it (headers upper-cased and centred, cells right-aligned, one space of padding,
//! `+`/`-`/`|` borders, no lines between rows), so scripts that parse etcdctl's tables parse
//! ours. Written out here rather than with a table crate because what matters is matching
//! that exact layout, character for character, and it is a few lines.

/// `member list`'s columns, as etcdctl names them.
pub const MEMBER_LIST: [&str; 6] = [
    "ID",
    "Status",
    "Name",
    "Peer Addrs",
    "Client Addrs",
    "Is Learner",
];

/// `endpoint hashkv`'s columns.
pub const ENDPOINT_HASHKV: [&str; 2] = ["endpoint", "hash"];

/// `endpoint status`'s columns.
pub const ENDPOINT_STATUS: [&str; 10] = [
    "endpoint",
    "ID",
    "version",
    "db size",
    "is leader",
    "is learner",
    "raft term",
    "raft index",
    "raft applied index",
    "errors",
];

/// `endpoint health`'s columns.
pub const ENDPOINT_HEALTH: [&str; 4] = ["endpoint", "health", "took", "error"];

/// The rendered table, each line ending in a newline.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let line = |cells: &mut dyn Iterator<Item = String>| -> String {
        let mut s = String::new();
        for cell in cells {
            s.push_str("| ");
            s.push_str(&cell);
            s.push(' ');
        }
        s + "|\n"
    };
    let mut out = rule.clone();
    out += &line(&mut header.iter().zip(&widths).map(|(h, w)| {
        let h = h.to_uppercase();
        let gap = w - h.chars().count();
        // tablewriter centres with the odd space on the right.
        format!("{}{h}{}", " ".repeat(gap / 2), " ".repeat(gap - gap / 2))
    }));
    out += &rule;
    for row in rows {
        out += &line(&mut (0..cols).map(|i| {
            let cell = row.get(i).map_or("", String::as_str);
            format!("{cell:>width$}", width = widths[i])
        }));
    }
    // Also after an empty body: tablewriter always draws the bottom border.
    out += &rule;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables exactly as etcdctl 3.4.23 printed them (captured from a real etcd).
    #[test]
    fn lays_out_like_etcdctl() {
        let row = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let members = render(
            &MEMBER_LIST,
            &[row(&[
                "be5e5331c2f6313f",
                "started",
                "default",
                "http://127.0.0.9:2380",
                "http://127.0.0.9:2379",
                "false",
            ])],
        );
        assert_eq!(
            members,
            "\
+------------------+---------+---------+-----------------------+-----------------------+------------+
|        ID        | STATUS  |  NAME   |      PEER ADDRS       |     CLIENT ADDRS      | IS LEARNER |
+------------------+---------+---------+-----------------------+-----------------------+------------+
| be5e5331c2f6313f | started | default | http://127.0.0.9:2380 | http://127.0.0.9:2379 |      false |
+------------------+---------+---------+-----------------------+-----------------------+------------+
"
        );
        let health = render(
            &ENDPOINT_HEALTH,
            &[
                row(&["http://127.0.0.9:2379", "true", "2.293079ms", ""]),
                row(&[
                    "http://127.0.0.9:1",
                    "false",
                    "1.00030507s",
                    "context deadline exceeded",
                ]),
            ],
        );
        assert_eq!(
            health,
            "\
+-----------------------+--------+-------------+---------------------------+
|       ENDPOINT        | HEALTH |    TOOK     |           ERROR           |
+-----------------------+--------+-------------+---------------------------+
| http://127.0.0.9:2379 |   true |  2.293079ms |                           |
|    http://127.0.0.9:1 |  false | 1.00030507s | context deadline exceeded |
+-----------------------+--------+-------------+---------------------------+
"
        );
    }

    #[test]
    fn an_empty_table_is_its_header_and_both_rules() {
        assert_eq!(
            render(&["a", "bc"], &[]),
            "+---+----+\n| A | BC |\n+---+----+\n+---+----+\n"
        );
    }
}
