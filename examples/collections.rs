//! Collections on `PinAlloc` through the `Allocator` trait: an order book whose levels live
//! in an `allocator_api2::vec::Vec` and whose orders are indexed by a `hashbrown::HashMap`,
//! both allocating from pinalloc (without making it the global allocator).
//!
//! `cargo run --release --example collections --features allocator-api2-02`

use allocator_api2::vec::Vec as ApiVec;
use hashbrown::HashMap;
use pinalloc::PinAlloc;

static ALLOC: PinAlloc = PinAlloc::new();

#[derive(Debug, Clone, Copy)]
struct Order {
    price: u64,
    quantity: u32,
}

fn main() {
    // allocator-api2 0.4: the crate's own `Allocator`.
    let mut levels: ApiVec<(u64, u32), &PinAlloc> = ApiVec::new_in(&ALLOC);
    // allocator-api2 0.2 (through hashbrown): the same allocator.
    let mut orders: HashMap<u64, Order, hashbrown::DefaultHashBuilder, &PinAlloc> = HashMap::new_in(&ALLOC);

    for id in 0..10_000u64 {
        let order = Order { price: 100_000 + (id * 7919) % 500, quantity: 1 + (id % 50) as u32 };
        orders.insert(id, order);
        match levels.binary_search_by_key(&order.price, |&(price, _)| price) {
            Ok(i) => levels[i].1 += order.quantity,
            Err(i) => levels.insert(i, (order.price, order.quantity)),
        }
    }
    // Cancel every third order.
    for id in (0..10_000u64).step_by(3) {
        let order = orders.remove(&id).expect("inserted above");
        let i = levels.binary_search_by_key(&order.price, |&(price, _)| price).expect("its level exists");
        levels[i].1 -= order.quantity;
    }
    levels.retain(|&(_, quantity)| quantity > 0);

    let resting: u64 = orders.values().map(|o| u64::from(o.quantity)).sum();
    let on_levels: u64 = levels.iter().map(|&(_, q)| u64::from(q)).sum();
    assert_eq!(resting, on_levels, "the book's levels and its orders agree");
    println!(
        "{} resting orders on {} price levels, best bid {}, {} shares; capacity of the level vector: {}",
        orders.len(),
        levels.len(),
        levels.last().map_or(0, |l| l.0),
        resting,
        levels.capacity()
    );
    let stats = ALLOC.stats();
    println!(
        "pinalloc: {} KiB of small-block segments resident, {} segment(s)",
        stats.small_resident_bytes >> 10,
        stats.segments
    );
}
