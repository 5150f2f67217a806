//! Any sequence of stack and pool operations, checked against a model (`Vec`s as stacks).
//! Run: `cargo +nightly fuzz run stack_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinalloc::stack::{NodePool, Owned, TreiberStack};

fuzz_target!(|data: &[u8]| {
    let pool = NodePool::with_limit(64);
    let stacks = [TreiberStack::new(&pool), TreiberStack::new(&pool)];
    let mut models: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut held: Vec<Owned<'_, u8>> = Vec::new();
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let which = usize::from(op >> 7);
        match op & 0x7 {
            0 => {
                let value = bytes.next().unwrap_or(0);
                match pool.insert(value) {
                    Ok(node) => held.push(node),
                    Err(_) => assert_eq!(pool.created(), 64, "only a full pool refuses"),
                }
            }
            1 => {
                if let Some(node) = held.pop() {
                    models[which].push(*node);
                    stacks[which].push(node);
                }
            }
            2 => {
                let got = stacks[which].pop();
                assert_eq!(got.as_deref().copied(), models[which].pop());
                held.extend(got);
            }
            3 => {
                let got: Vec<u8> = stacks[which].pop_all().map(|n| *n).collect();
                let mut expected = std::mem::take(&mut models[which]);
                expected.reverse();
                assert_eq!(got, expected);
            }
            4 => drop(held.pop()),
            5 => {
                // Move the top of one stack to the other.
                if let Some(node) = stacks[which].pop() {
                    let value = models[which].pop().expect("model and stack agree");
                    assert_eq!(*node, value);
                    models[1 - which].push(value);
                    stacks[1 - which].push(node);
                }
            }
            6 => {
                if let Some(node) = held.pop() {
                    let raw = node.into_raw();
                    // SAFETY: `raw` came from into_raw on this pool just above.
                    held.push(unsafe { Owned::from_raw(&pool, raw) });
                }
            }
            _ => {
                if let Some(node) = held.last_mut() {
                    **node = node.wrapping_add(1);
                }
            }
        }
        for (stack, model) in stacks.iter().zip(&models) {
            assert_eq!(stack.is_empty(), model.is_empty());
        }
    }
    let in_use = held.len() + models.iter().map(Vec::len).sum::<usize>();
    assert!(in_use <= pool.created() as usize);
});
