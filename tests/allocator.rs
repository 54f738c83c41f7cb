//! The allocator as `switchboard serve` sets it up (`allocator::tune`), in a process of its
//! own: glibc's arenas are per process, and this file is one test binary with one test.

/// The number of arenas glibc's `malloc_info` reports (`<heap nr="…">` elements).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn arenas() -> usize {
    unsafe extern "C" {
        fn open_memstream(buffer: *mut *mut libc::c_char, size: *mut libc::size_t) -> *mut libc::FILE;
        fn malloc_info(options: libc::c_int, stream: *mut libc::FILE) -> libc::c_int;
    }
    let mut buffer: *mut libc::c_char = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: open_memstream gives a stream writing into a buffer it allocates (freed
    // below, after fclose has flushed it); malloc_info only writes XML to the stream.
    let text = unsafe {
        let stream = open_memstream(&mut buffer, &mut size);
        assert!(!stream.is_null(), "open_memstream failed");
        assert_eq!(malloc_info(0, stream), 0, "malloc_info failed");
        libc::fclose(stream);
        let text = std::ffi::CStr::from_ptr(buffer).to_string_lossy().into_owned();
        libc::free(buffer.cast());
        text
    };
    text.matches("<heap nr=").count()
}

/// A multi-threaded hub with glibc's default of 8 arenas a core kept the free memory of
/// each (16 on two cores): an hour's steady chat grew it by megabytes with the live heap
/// flat (bench/README.md, the soak). Threads now share one a core, at least two.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_hubs_threads_share_one_allocator_arena_a_core() {
    switchboard::allocator::tune();
    let limit = switchboard::allocator::arena_limit();
    // More threads than the limit, all allocating at once, as the runtime's workers and
    // blocking pool do: glibc gives each new thread an arena of its own until it reaches
    // its limit (by default eight a core).
    let spawned = limit + 6;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(spawned));
    let threads: Vec<_> = (0..spawned)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let held: Vec<Vec<u8>> = (0..64).map(|n| vec![i as u8; 200 + n]).collect();
                barrier.wait();
                held.len()
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("the allocating thread ends");
    }
    let arenas = arenas();
    assert!(
        arenas <= limit,
        "glibc made {arenas} arenas for {spawned} threads; at most {limit} expected"
    );
}
