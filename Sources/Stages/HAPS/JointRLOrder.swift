import Pipeline

/// The reference's order of training questions in joint RL (the reference's rl_batch.py; docs/routing.md, Joint RL): each epoch
/// `random.Random(seed + epoch).shuffle(order)` is applied in place, so an epoch's order is the
/// previous epoch's shuffled again (not a fresh shuffle of the file order).
public enum JointRLOrder {
    /// The question indices of `epoch` (from 0), CPython's generator and shuffle exactly.
    public static func questions(count: Int, epoch: Int, seed: Int = PipelineSpec.defaultSeed) -> [Int] {
        var order = Array(0..<count)
        for e in 0...max(0, epoch) {
            var rng = PythonRandom(seed: seed + e)
            rng.shuffle(&order)
        }
        return order
    }
}
