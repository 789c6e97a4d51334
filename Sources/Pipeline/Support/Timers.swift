import Dispatch

/// The queue for timers that must fire while stages compute: progress lines, the SIGKILL that
/// follows a SIGTERM. Stages run on Dispatch's global pool, whose threads, as many as the
/// cores, long computations can hold all of: a timer on that pool then fires only when a
/// stage ends (progress lines came 70 s apart while two candidates trained). A queue of its
/// own targets Dispatch's overcommitting pool, which always finds a thread.
enum Timers {
    static let queue = DispatchQueue(label: "haps-pipe.timers")
}
