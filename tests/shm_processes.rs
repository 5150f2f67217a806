//! The shared-memory types across real processes: this binary re-executes itself as the
//! children (`PINALLOC_SHM_ROLE` names the role), so every test here runs at least two
//! processes. A custom harness (`harness = false`) keeps the child roles out of the test list.
//!
//! Run one test with `cargo test --test shm_processes -- NAME`.

// The shared-memory types are not built under loom.
#[cfg(not(loom))]
mod processes {
    use pinalloc::shm::{CircularBuffer, SharedArray, SharedBuffer, SharedRegion, ShmError};
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::time::Duration;

    const ROLE: &str = "PINALLOC_SHM_ROLE";
    const NAME: &str = "PINALLOC_SHM_NAME";
    const ARGS: &str = "PINALLOC_SHM_ARGS";
    /// Long enough never to fire on a healthy run, short enough that a bug fails instead of hanging.
    const PATIENCE: Duration = Duration::from_secs(120);

    fn unique(tag: &str) -> String {
        format!("pinalloc-proc-{}-{tag}", std::process::id())
    }

    /// Starts this binary as a child in `role` on segment `name`, with extra numeric args.
    fn spawn(role: &str, name: &str, args: &[u64]) -> Child {
        let args: Vec<String> = args.iter().map(u64::to_string).collect();
        Command::new(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .env(NAME, name)
            .env(ARGS, args.join(","))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn finish(child: Child) -> String {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
        String::from_utf8(out.stdout).unwrap()
    }

    /// Blocks until the child prints `line` (its signal that it reached a point).
    fn wait_for_line(child: &mut Child, line: &str) {
        let stdout = child.stdout.as_mut().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut got = String::new();
        reader.read_line(&mut got).unwrap();
        assert_eq!(got.trim(), line);
    }

    fn encode(writer: u64, seq: u64) -> [u8; 16] {
        let mut m = [0u8; 16];
        m[..8].copy_from_slice(&writer.to_le_bytes());
        m[8..].copy_from_slice(&seq.to_le_bytes());
        m
    }

    fn decode(m: &[u8]) -> (u64, u64) {
        (u64::from_le_bytes(m[..8].try_into().unwrap()), u64::from_le_bytes(m[8..16].try_into().unwrap()))
    }

    // ---- the children ----

    fn child(role: &str, name: &str, args: &[u64]) {
        match role {
            "check-region" => {
                let region = SharedRegion::open(name).unwrap();
                assert_eq!(region.len() as u64, args[0], "size learned from the header");
                let mut bytes = vec![0; region.len()];
                region.read(0, &mut bytes).unwrap();
                assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
                region.write(0, b"child was here").unwrap();
            }
            "fill-array-and-buffer" => {
                let array = SharedArray::<u64>::open(&format!("{name}-array")).unwrap();
                for i in 0..array.len() {
                    array.set(i, i as u64 * 3).unwrap();
                }
                let buffer = SharedBuffer::open(&format!("{name}-buffer")).unwrap();
                buffer.write(8, &[1.5f64, 2.5], PATIENCE).unwrap();
                buffer.write_bytes(100, b"from the child", PATIENCE).unwrap();
            }
            "try-locks" => {
                // The parent holds the write lock: both kinds of lock must time out.
                let buffer = SharedBuffer::open(name).unwrap();
                assert!(matches!(
                    buffer.acquire_write_lock(Duration::from_millis(100)),
                    Err(ShmError::Timeout)
                ));
                assert!(matches!(
                    buffer.acquire_read_lock(Duration::from_millis(100)),
                    Err(ShmError::Timeout)
                ));
                println!("timed out");
            }
            "hold-write-lock-and-die" => {
                let buffer = SharedBuffer::open(name).unwrap();
                let mut guard = buffer.acquire_write_lock(PATIENCE).unwrap();
                guard.write(0, &7u64).unwrap();
                std::mem::forget(guard);
                println!("locked");
                std::thread::sleep(PATIENCE);
            }
            "writer" => {
                let (id, count) = (args[0], args[1]);
                let ring = CircularBuffer::open(name).unwrap();
                for seq in 0..count {
                    ring.write(&encode(id, seq), PATIENCE).unwrap();
                }
            }
            "reader" => {
                // Reads until shutdown; checks each writer's order; reports counts and marks every
                // message in the shared `seen` array (one byte per message) at the end.
                let (writers, per_writer) = (args[0], args[1]);
                let ring = CircularBuffer::open(name).unwrap();
                let mut last = vec![None::<u64>; writers as usize];
                let mut got = Vec::new();
                loop {
                    match ring.read_with(PATIENCE, decode) {
                        Ok((w, seq)) => {
                            assert!(w < writers && seq < per_writer, "message ({w}, {seq}) was never sent");
                            assert!(
                                last[w as usize].is_none_or(|l| l < seq),
                                "writer {w} reordered: {seq} after {:?}",
                                last[w as usize]
                            );
                            last[w as usize] = Some(seq);
                            got.push((w * per_writer + seq) as usize);
                        }
                        Err(ShmError::Shutdown) => break,
                        Err(e) => panic!("reader: {e}"),
                    }
                }
                let seen = SharedArray::<u8>::open(&format!("{name}-seen")).unwrap();
                let mut seen = seen.write_lock(PATIENCE).unwrap();
                for index in got {
                    seen[index] += 1;
                }
            }
            "claim-and-die" => {
                let ring = CircularBuffer::open(name).unwrap();
                if args[0] == 0 {
                    ring.write_with(PATIENCE, |_| {
                        println!("claimed");
                        std::thread::sleep(PATIENCE);
                        0
                    })
                    .unwrap();
                } else {
                    ring.read_with(PATIENCE, |_| {
                        println!("claimed");
                        std::thread::sleep(PATIENCE);
                    })
                    .unwrap();
                }
            }
            other => panic!("unknown role {other}"),
        }
    }

    // ---- the tests ----

    fn open_without_size() {
        let name = unique("region");
        let region = SharedRegion::create(&name, 123_457).unwrap();
        let pattern: Vec<u8> = (0..region.len()).map(|i| (i % 251) as u8).collect();
        region.write(0, &pattern).unwrap();
        finish(spawn("check-region", &name, &[123_457]));
        let mut back = [0u8; 14];
        region.read(0, &mut back).unwrap();
        assert_eq!(&back, b"child was here");
    }

    fn array_and_buffer_are_shared() {
        let name = unique("shared");
        let array = SharedArray::<u64>::create(&format!("{name}-array"), 1000).unwrap();
        let buffer = SharedBuffer::create(&format!("{name}-buffer"), 4096).unwrap();
        finish(spawn("fill-array-and-buffer", &name, &[]));
        assert!(array.read_lock(PATIENCE).unwrap().iter().enumerate().all(|(i, &v)| v == i as u64 * 3));
        assert_eq!(buffer.read::<[f64; 2]>(8, PATIENCE).unwrap(), [1.5, 2.5]);
        let mut text = [0u8; 14];
        buffer.read_bytes(100, &mut text, PATIENCE).unwrap();
        assert_eq!(&text, b"from the child");
    }

    fn rwlock_excludes_across_processes_and_survives_a_dead_writer() {
        let name = unique("lock");
        let buffer = SharedBuffer::create(&name, 64).unwrap();
        let guard = buffer.acquire_write_lock(PATIENCE).unwrap();
        assert_eq!(finish(spawn("try-locks", &name, &[])).trim(), "timed out");
        drop(guard);
        let mut holder = spawn("hold-write-lock-and-die", &name, &[]);
        wait_for_line(&mut holder, "locked");
        assert!(matches!(buffer.acquire_read_lock(Duration::from_millis(50)), Err(ShmError::Timeout)));
        holder.kill().unwrap();
        holder.wait().unwrap();
        // The holder is gone (and reaped): the next waiter recovers the lock.
        let guard = buffer.acquire_read_lock(Duration::from_secs(10)).unwrap();
        assert_eq!(guard.read::<u64>(0).unwrap(), 7, "the dead writer's bytes are kept");
    }

    /// `writers` writer processes and `readers` reader processes pass `total` messages.
    fn ring_exchange(writers: u64, readers: u64, total: u64) {
        let name = unique(&format!("ring{writers}x{readers}"));
        let ring = CircularBuffer::create(&name, 64, 16).unwrap();
        let per_writer = total / writers;
        let seen =
            SharedArray::<u8>::create(&format!("{name}-seen"), (writers * per_writer) as usize).unwrap();
        let reader_children: Vec<Child> =
            (0..readers).map(|_| spawn("reader", &name, &[writers, per_writer])).collect();
        let writer_children: Vec<Child> =
            (0..writers).map(|w| spawn("writer", &name, &[w, per_writer])).collect();
        for child in writer_children {
            finish(child);
        }
        while ring.stats().read < writers * per_writer {
            std::thread::sleep(Duration::from_millis(1));
        }
        ring.shutdown();
        for child in reader_children {
            finish(child);
        }
        let seen = seen.read_lock(PATIENCE).unwrap();
        let wrong: Vec<usize> =
            seen.iter().enumerate().filter(|&(_, &n)| n != 1).map(|(i, _)| i).take(5).collect();
        assert!(wrong.is_empty(), "messages not received exactly once: {wrong:?}");
        let stats = ring.stats();
        assert_eq!((stats.written, stats.read, stats.lost_writes, stats.lost_reads), (total, total, 0, 0));
    }

    const MILLION: u64 = 1_000_000;

    fn ring_one_writer_one_reader() {
        ring_exchange(1, 1, MILLION);
    }

    fn ring_two_writers_two_readers() {
        ring_exchange(2, 2, MILLION);
    }

    fn ring_four_writers_one_reader() {
        ring_exchange(4, 1, MILLION);
    }

    fn ring_survives_a_killed_writer() {
        let name = unique("killed-writer");
        let ring = CircularBuffer::create(&name, 2, 64).unwrap();
        let mut child = spawn("claim-and-die", &name, &[0]);
        wait_for_line(&mut child, "claimed");
        child.kill().unwrap();
        child.wait().unwrap();
        ring.write(b"after", PATIENCE).unwrap();
        assert_eq!(ring.read(&mut [0; 64], PATIENCE), Err(ShmError::MessageLost { position: 0 }));
        let mut dst = [0; 64];
        assert_eq!(ring.read(&mut dst, PATIENCE).unwrap(), 5);
        assert_eq!(&dst[..5], b"after");
        for round in 0..10u8 {
            ring.write(&[round], PATIENCE).unwrap();
            assert_eq!(ring.read_with(PATIENCE, |m| m.to_vec()).unwrap(), [round]);
        }
        assert_eq!(ring.stats().lost_writes, 1);
    }

    fn ring_survives_a_killed_reader() {
        let name = unique("killed-reader");
        let ring = CircularBuffer::create(&name, 2, 64).unwrap();
        ring.write(b"doomed", PATIENCE).unwrap();
        let mut child = spawn("claim-and-die", &name, &[1]);
        wait_for_line(&mut child, "claimed");
        child.kill().unwrap();
        child.wait().unwrap();
        // Three writes need the dead reader's node back.
        for round in 0..3u8 {
            ring.write(&[round], PATIENCE).unwrap();
            if round > 0 {
                assert_eq!(ring.read_with(PATIENCE, |m| m.to_vec()).unwrap(), [round - 1]);
            }
        }
        assert_eq!(ring.stats().lost_reads, 1);
    }

    pub fn main() -> ExitCode {
        if let Ok(role) = std::env::var(ROLE) {
            let name = std::env::var(NAME).unwrap();
            let args: Vec<u64> = std::env::var(ARGS)
                .unwrap()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            child(&role, &name, &args);
            return ExitCode::SUCCESS;
        }
        let tests: &[(&str, fn())] = &[
            ("open_without_size", open_without_size),
            ("array_and_buffer_are_shared", array_and_buffer_are_shared),
            (
                "rwlock_excludes_across_processes_and_survives_a_dead_writer",
                rwlock_excludes_across_processes_and_survives_a_dead_writer,
            ),
            ("ring_one_writer_one_reader", ring_one_writer_one_reader),
            ("ring_two_writers_two_readers", ring_two_writers_two_readers),
            ("ring_four_writers_one_reader", ring_four_writers_one_reader),
            ("ring_survives_a_killed_writer", ring_survives_a_killed_writer),
            ("ring_survives_a_killed_reader", ring_survives_a_killed_reader),
        ];
        let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
        let mut failed = 0;
        let mut ran = 0;
        for (name, test) in tests {
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            ran += 1;
            let started = std::time::Instant::now();
            let ok = std::panic::catch_unwind(test).is_ok();
            println!(
                "test {name} ... {} ({:.1} s)",
                if ok { "ok" } else { "FAILED" },
                started.elapsed().as_secs_f64()
            );
            failed += usize::from(!ok);
        }
        println!(
            "test result: {}. {} passed; {failed} failed",
            if failed == 0 { "ok" } else { "FAILED" },
            ran - failed
        );
        if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

fn main() -> std::process::ExitCode {
    #[cfg(not(loom))]
    return processes::main();
    #[cfg(loom)]
    std::process::ExitCode::SUCCESS
}
