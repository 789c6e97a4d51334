#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// CPython's `random.Random`, bit for bit: MT19937 seeded from an integer the way CPython
/// seeds it, and the methods the reference's random choices use.
///
///     var rng = PythonRandom(seed: 43)
///     rng.random()                 // same as random.Random(43).random()
///     rng.shuffle(&rows)           // same order as random.Random(43).shuffle(rows)
///
/// Checked against python3 itself over many seeds and sizes (Tests/StagesTests).
public struct PythonRandom: Sendable {
    private var mt = [UInt32](repeating: 0, count: 624)
    private var index = 625

    /// `random.Random(seed)` for an integer seed (CPython uses |seed|, split into 32-bit words).
    public init(seed: Int) {
        var n = seed.magnitude
        var key: [UInt32] = []
        repeat {
            key.append(UInt32(truncatingIfNeeded: n))
            n >>= 32
        } while n > 0
        initByArray(key)
    }

    private mutating func initGenrand(_ s: UInt32) {
        mt[0] = s
        for i in 1..<624 {
            mt[i] = 1_812_433_253 &* (mt[i - 1] ^ (mt[i - 1] >> 30)) &+ UInt32(i)
        }
        index = 624
    }

    private mutating func initByArray(_ key: [UInt32]) {
        initGenrand(19_650_218)
        var i = 1, j = 0
        for _ in 0..<max(624, key.count) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) &* 1_664_525)) &+ key[j] &+ UInt32(j)
            i += 1; j += 1
            if i >= 624 { mt[0] = mt[623]; i = 1 }
            if j >= key.count { j = 0 }
        }
        for _ in 0..<623 {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) &* 1_566_083_941)) &- UInt32(i)
            i += 1
            if i >= 624 { mt[0] = mt[623]; i = 1 }
        }
        mt[0] = 0x8000_0000
        index = 624
    }

    /// One 32-bit output of MT19937 (`genrand_uint32`).
    public mutating func nextUInt32() -> UInt32 {
        if index >= 624 {
            for k in 0..<624 {
                let y = (mt[k] & 0x8000_0000) | (mt[(k + 1) % 624] & 0x7FFF_FFFF)
                mt[k] = mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_B0DF)
            }
            index = 0
        }
        var y = mt[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// `random()`: a double in [0, 1) with 53 random bits (27 + 26 from two draws).
    public mutating func random() -> Double {
        let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
        return (a * 67_108_864.0 + b) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `getrandbits(k)` for k in 0...64 (CPython fills 32-bit words from the least significant).
    public mutating func getrandbits(_ k: Int) -> UInt64 {
        precondition(k >= 0 && k <= 64, "getrandbits supports 0...64 bits here, got \(k)")
        if k == 0 { return 0 }
        if k <= 32 { return UInt64(nextUInt32() >> UInt32(32 - k)) }
        let low = UInt64(nextUInt32())
        let high = UInt64(nextUInt32() >> UInt32(64 - k))
        return low | (high << 32)
    }

    /// `_randbelow(n)`: uniform in [0, n) by rejection on `getrandbits(n.bit_length())`.
    public mutating func randbelow(_ n: Int) -> Int {
        precondition(n > 0, "randbelow needs n > 0")
        let k = Int.bitWidth - n.leadingZeroBitCount
        var r = getrandbits(k)
        while r >= UInt64(n) { r = getrandbits(k) }
        return Int(r)
    }

    /// `shuffle(x)`: from the last index down, swap with `_randbelow(i + 1)`.
    public mutating func shuffle<T>(_ x: inout [T]) {
        guard x.count > 1 else { return }
        for i in stride(from: x.count - 1, through: 1, by: -1) {
            x.swapAt(i, randbelow(i + 1))
        }
    }

    /// `choice(seq)`; nil for an empty sequence (Python raises IndexError).
    public mutating func choice<T>(_ seq: [T]) -> T? {
        seq.isEmpty ? nil : seq[randbelow(seq.count)]
    }

    /// `sample(population, k)` with CPython's two algorithms and its set-size threshold.
    public mutating func sample<T>(_ population: [T], _ k: Int) -> [T] {
        let n = population.count
        precondition(k >= 0 && k <= n, "sample larger than population or negative")
        var setsize = 21
        if k > 5 {
            // 4 ** ceil(log(k * 3, 4)), computed like CPython: log(x) / log(4) in doubles.
            let e = (log(Double(k * 3)) / log(4.0)).rounded(.up)
            setsize += Int(pow(4.0, e))
        }
        var result: [T] = []
        result.reserveCapacity(k)
        if n <= setsize {
            var pool = population
            for i in 0..<k {
                let j = randbelow(n - i)
                result.append(pool[j])
                pool[j] = pool[n - i - 1]
            }
        } else {
            var selected = Set<Int>()
            for _ in 0..<k {
                var j = randbelow(n)
                while selected.contains(j) { j = randbelow(n) }
                selected.insert(j)
                result.append(population[j])
            }
        }
        return result
    }

    /// `choices(population, k=k)` without weights: `population[floor(random() * n)]` per draw.
    public mutating func choices<T>(_ population: [T], k: Int) -> [T] {
        let n = Double(population.count)
        return (0..<k).map { _ in population[Int((random() * n).rounded(.down))] }
    }
}
