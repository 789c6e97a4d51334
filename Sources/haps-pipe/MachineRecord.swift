import NN
import Pipeline

extension RunOptions {
    /// Options for the tool's runs: run records name the CPU and, when this run loaded it,
    /// OpenBLAS's kernel family (docs/running.md, "Reproducibility").
    static var tool: RunOptions {
        var o = RunOptions()
        o.machine = {
            var m: [String: JSONValue] = ["cpu": .string(Machine.cpuModel)]
            if let core = BLAS.loadedCoreName { m["openblas_core"] = .string(core) }
            return m
        }
        return o
    }
}
