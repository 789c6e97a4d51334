import Dispatch

/// The queue for events that must be handled while stages compute: progress lines, the
/// SIGKILL that follows a SIGTERM, Ctrl-C. Dispatch's global pool has about as many threads
/// as cores, and long computations can hold all of them (a stage's own `Parallel` loops, a
/// `concurrentPerform`): an event on that pool then waits until one ends (progress lines came
/// 70 s apart and Ctrl-C took 124 s while two candidates trained). A queue of its own targets
/// Dispatch's overcommitting pool, which always finds a thread.
public enum ControlEvents {
    public static let queue = DispatchQueue(label: "haps-pipe.control-events")
}
