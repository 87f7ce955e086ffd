// Package gc is registryd's garbage collector: it removes the manifests,
// layer links and blobs that nothing live references, and abandoned
// uploads. It has one mark and two drivers of it: the offline collector
// (Run, used by `registryd garbage-collect` when no registry accepts
// writes to the storage: mark, then sweep at once) and the online
// collector (Collector, run by `registryd serve` on a schedule, and by
// garbage-collect while registries serve), which collects while any number
// of registries serve the store and write to it, with no database and no
// lock held across a storage round trip. This comment states what both
// guarantee and proves the online one; gc.go describes the offline sweep,
// docs/online-gc.md the operator's view.
//
// # The mark
//
// Mark reads every repository and builds the set of digests that must
// stay: the roots (every revision, or with DeleteUntagged only the tagged
// manifests), the children of live indexes, the config and layers of live
// manifests, and to a fixpoint the referrers of live manifests. A live root
// whose content cannot be read stops the collection before anything is
// removed. The set is a sorted array (storage.DigestSet: 32 bytes a sha256
// digest plus one of mask and padding, about 32 MiB for a million live
// digests, whatever order they come in; digests are merged in sorted
// batches, so at most about twice the final set is held while marking),
// not a map (over 120 bytes a digest).
//
// # Invariants (both collectors)
//
//  1. Nothing reachable from a tag, a revision (unless DeleteUntagged), a
//     live upload session or a push in progress is deleted.
//  2. A manifest PUT that returned 201 never ends up referencing a missing
//     blob or child manifest.
//  3. The online collector deletes only what a durable plan condemned at
//     least Delay earlier and a later mark re-checked.
//  4. A kill -9 of the collector at any instant leaves the store
//     consistent (every remaining link names content that remains), and
//     the next run resumes.
//
// # The online collector's objects
//
// Under _registryd/gc (storage/paths.go): the lease (lease.go), the state
// (storage.GCState: plan, phase, sweep pass, cursor, done, kept, the
// writers' bound MaxAge), plans/<id> (the items one run condemned, sorted
// by digest: revisions and layer links with their repository, blobs with
// their size; written whole before the state names it), sweeps/<id> (the
// part of a plan a sweep deletes), pins/<plan>/<digest> (a writer relied
// on the digest while the plan condemned it) and runs/<id> (reports).
// Every age is the store's: an object's modification time against the
// modification time of a probe just written (storage.Registry.StorageNow),
// never one host's clock; ClockSkew bounds how far the clocks inside the
// store may disagree, and is added to every age that must be exceeded.
//
// # A run
//
//  1. Take the lease (compare-and-swap on the store; its epoch is the
//     fencing token: every state write is conditional on the version the
//     run last wrote, so a collector whose lease was taken cannot move the
//     state, and the lease is checked right before every delete). Read the
//     state. If a plan P is published and not yet Delay+ClockSkew old, stop:
//     a new plan would restart its clock.
//  2. Mark, from scratch, to M.
//  3. If P is due: its candidates are its items whose digest is not in M
//     (and, when resuming an interrupted sweep, were in that sweep's set
//     and not kept by it). With DeleteUntagged the mark does not reach
//     revisions no tag reaches; those this sweep does not delete (too
//     young to have been condemned) keep what they reference, children
//     and their content included, so that no revision that stays ever
//     names deleted content. The candidates are written as the sweep set, and the
//     state says "sweeping". Then per pass, links (revisions and layer
//     links) then blobs, in batches of whole digests in digest order: the
//     state's cursor moves to the batch's last digest; the collector waits
//     MaxAge (monotonic clock); it lists pins/<P> and keeps every pinned
//     digest and everything it references, transitively (a pinned index
//     keeps its children, their configs and layers), for the rest of the
//     sweep, publishing them in the state (kept); it checks the lease; it
//     deletes the batch. The next batch's cursor move and wait overlap this
//     batch's delete, and batches are sized so that a delete takes about
//     MaxAge: the sweep runs at the store's speed. Between the passes the
//     removed links are made durable (driver.Flusher). The cursor never
//     moves back, also across a crash: a resumed sweep's first batch ends
//     where the interrupted one's cursor was.
//  4. Plan P': what is not in M and is older than Delay+ClockSkew (blob
//     data, layer link and revision link times), as the store is after the
//     sweep. P' is written, then the state names it (phase "condemned",
//     created: the store's time right before that write); P, its sweep sets
//     and pins are removed. A run that finds nothing publishes no plan.
//
// # The writers' protocol (storage/gcprotocol.go)
//
// Every registry serving the store, collector or not, keeps a copy of the
// state and of the current plan's (or, while sweeping, the sweep set's)
// digests, read in the background every MaxAge/4; a request uses a copy at
// most MaxAge/2 old (else it reads the state itself) and must commit
// within MaxAge of that read (it decides again before committing if its
// copy aged past MaxAge/2, and a commit that still overran is answered 503
// rather than 201). A request relies on digest d when it HEADs or GETs the
// blob, mounts it, PUTs a manifest referencing it (config, layers,
// children, and while a plan is in force what the children reference, to
// the bottom), commits an upload of d, or PUTs manifest d (tagging it).
// For each such d:
//
//   - not in the plan: nothing (no storage request: the common case);
//   - condemned, not reached by the sweep (phase condemned, or the cursor
//     of d's pass below d): write pins/<plan>/<d> (once per plan and
//     registry), then go on;
//   - reached (cursor at or past d, its deletion not done): a blob HEAD or
//     GET says 404 BLOB_UNKNOWN, a mount is refused (the client gets an
//     upload session), a manifest PUT referencing d says 400
//     MANIFEST_BLOB_UNKNOWN, a manifest GET or HEAD says 404: the client
//     uploads again; a write of d itself (an upload's commit, a PUT of
//     those manifest bytes) waits until the sweep is done with d, then
//     writes it anew (30 s at most, then 503 with Retry-After);
//   - deleted by the sweep: what is there now was written since, and is
//     looked up as usual (deeper references of a manifest are looked up in
//     its repository).
//
// A read (HEAD, GET) of content the sweep reached that a writer pinned is
// served: that pin was written before the sweep listed the pins of its
// batch (or its writer was refused by its own re-check), so the sweep
// keeps it, and an image just pushed pulls without a gap. A write never
// relies on a pin: one that finds a pinned digest being deleted waits
// until the state says whether the sweep kept it (it then lists the digest
// as kept) or deleted it, and looks it up then. When the state cannot be
// read, writes that rely on existing content fail closed (503); reads go
// on.
//
// # Why nothing live is deleted
//
// Let d be deleted by the sweep of plan P, in a batch whose cursor move
// the collector wrote at T (store, but the argument needs only one
// collector's monotonic clock and the writers' bounds) and whose pins it
// listed at L >= T + MaxAge. Take any write W that made something live
// reference d, committed at C.
//
//   - W read the state at R >= T: it saw the cursor at or past d, so it did
//     not rely on d (it was refused, waited for the deletion and wrote d
//     anew, or found d gone), and the reference is to content written
//     after the deletion.
//   - W read the state at R < T, and its copy showed P: d was condemned and
//     not reached, so W pinned d before committing, and committed by
//     R + MaxAge < T + MaxAge <= L. The pin was there when the collector
//     listed the pins: d was kept. (A write pinning a manifest relied on
//     what it references too; the collector keeps the pin's closure. Any
//     of that closure in an earlier batch was, by the same argument for
//     that batch, either kept or seen as swept by W, which then looked it
//     up and was refused.)
//   - W's copy did not show P: W read the state before P was published at
//     Pp, and committed by Pp + MaxAge. The sweep's mark started after the
//     run found P due: at least Delay+ClockSkew after Pp, and Delay >=
//     2*MaxAge+ClockSkew (the configuration refuses less). So the mark saw
//     W's reference and d was not a candidate.
//   - W committed before Pp: then the mark that made P (which condemned d)
//     missed W only if W committed after that mark read W's repository;
//     the re-check mark, which started after Pp, sees it.
//
// What a plan condemns is unreferenced and older than Delay at the time of
// its mark; new content (an upload not yet in a manifest) is younger than
// Delay when the next plan is made, so it is condemned no sooner than Delay
// after it was written, and deleted no sooner than Delay after that, after
// a re-check: a push has at least Delay between its blobs and its
// manifest. "Younger" counts the layer links too: an upload of content
// already in the store keeps the old file (its time is the first push's)
// and writes only a link, so a blob is condemned only when its data and
// every layer link to it are older than Delay. This is invariant 1; 2 follows since a PUT's references are
// relied on as above; 3 is the run's structure.
//
// # Crashes (invariant 4)
//
// Plans, sweep sets, pins and the state are objects written whole. The
// state's cursor moves before a batch is deleted, its done after, so a
// crash leaves items between done and cursor half deleted, which a resumed
// sweep deletes again (a missing path is success); writers treat them as
// reached meanwhile. Links are deleted, and made durable, before the
// blobs they name; a revision before its content. A crashed collector's
// lease expires (3 heartbeats + ClockSkew after its last renewal); the
// next run takes it with a higher epoch and resumes from the state.
//
// # Several instances, one store
//
// Each instance with the collector enabled tries the lease at its turn;
// the holder runs, the others find it busy. The holder releases the lease
// after each run, so any instance (or garbage-collect) may take the next.
// A registry that does not follow the protocol (an older registryd) and
// accepts writes makes the online collector refuse to run: registries
// announce in their instance lease that they follow it.
//
// # The store
//
// The protocol needs read-after-write consistency for single objects and
// listings, and compare-and-swap (driver.ConditionalWriter); a collector
// checks both at its first run (storage.Registry.CheckConsistency) and
// refuses to run on a store that fails (the reason is logged, counted and
// shown by the admin API), while serving goes on.
package gc
