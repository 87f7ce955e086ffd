// Package retention deletes the tags (and, when asked, the untagged
// manifests) that a registry's retention policies no longer keep
// (storage.maintenance.retention; docs/retention.md for operators).
//
// It has three layers:
//
//   - Engine (engine.go, policy.go) decides, for one repository, from what
//     the caller knows: its tags with digest, push and pull times, its
//     manifests and how they reference each other, and the time. It reads
//     no storage, so that the server, `registryd retention` and the CLI's
//     prune (which learns the same facts over the admin API) apply one
//     implementation of the rules. A Budget applies the run's cap across
//     repositories.
//   - Runner (runner.go) applies an Engine to a storage.Registry: it walks
//     the repositories, reads tags with storage.TagInfos and the manifest
//     graph when needed, decides, deletes, and reports.
//   - Service (service.go) runs a Runner inside serve: on a schedule, on
//     demand (the admin API, through an adapter in cmd/registryd), one run
//     at a time, keeping the last reports.
//
// Invariants, each checked by the property test on random stores and
// policies (property_test.go) and by the table tests of the research
// note's lessons (engine_test.go):
//
//  1. A dry run writes nothing to the storage.
//  2. Decide is deterministic: a run deletes exactly what its dry run
//     listed, given the same store and time.
//  3. A tag any keep rule keeps, "latest", and a tag without a push time
//     are never deleted; a referrer's tag goes only with its subject's last
//     tag.
//  4. Deletion is by tag (storage.Repository.DeleteTagIf), never by digest:
//     no other tag is touched, and a tag pushed again since the decision
//     (to another manifest or the same one) stays.
//  5. An untagged manifest is deleted only when no tag reached it before
//     the run nor reaches it after (through index children, referrers of
//     live manifests, subjects of kept referrers' tags), and its last push
//     or tag is older than delay; reachability is read again right before
//     the removal.
//  6. No run deletes more than maxdeletionsperrun, nor any of a
//     repository's tags when it would delete more than maxshare of them.
//  7. Runs do not erode: a second run deletes no tag the first kept, unless
//     the first deferred deletions for lack of budget.
//
// Concurrency with writers: the decision is made on a snapshot; the two
// windows left open are between DeleteTagIf's check and its delete, and
// between the re-check of an untagged manifest and its removal, each one
// storage round trip (TestRunnerKeepsWhatChangedMeanwhile covers a write
// landing between the decision and the deletes).
package retention
