import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Open MPI's C library, loaded at run time with `dlopen` only when the process was launched by
/// `mpirun`, so the `prm` binary does not link libmpi: a host without Open MPI runs every
/// command, and a run without `mpirun` is today's single process with no MPI code in it.
///
/// The entry points and Open MPI's predefined handles (`MPI_COMM_WORLD` is `&ompi_mpi_comm_world`,
/// `MPI_FLOAT` `&ompi_mpi_float`, …: global symbols of libmpi) are looked up by name. That ties
/// prm to Open MPI's ABI (libmpi.so.40, Open MPI 3 to 5), which is what Debian ships; MPICH's
/// handles are integers and would need another table. Every call returns MPI's error code; with
/// `MPI_ERRORS_RETURN` set on the communicator, `check` turns a failure into an `MPIError`.
final class MPILibrary: @unchecked Sendable {
    /// Open MPI's soname; the only ABI the handle table below is written for.
    static let soname = "libmpi.so.40"
    /// `MPI_THREAD_FUNNELED`: only the main thread calls MPI (compute threads never do).
    static let threadFunneled: Int32 = 1
    /// `MPI_IN_PLACE` in Open MPI's mpi.h.
    static var inPlace: UnsafeRawPointer? { UnsafeRawPointer(bitPattern: 1) }

    typealias Handle = OpaquePointer
    typealias InitThread = @convention(c) (UnsafeMutablePointer<Int32>?, OpaquePointer?, Int32, UnsafeMutablePointer<Int32>?) -> Int32
    typealias CommQuery = @convention(c) (Handle?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias Allreduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle?, Handle?, Handle?) -> Int32
    typealias Iallreduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle?, Handle?, Handle?,
                                           UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    /// MPI_Waitall(count, requests, MPI_STATUSES_IGNORE (nil in Open MPI)).
    typealias Waitall = @convention(c) (Int32, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutableRawPointer?) -> Int32
    typealias Testall = @convention(c) (Int32, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32
    typealias Bcast = @convention(c) (UnsafeMutableRawPointer?, Int32, Handle?, Int32, Handle?) -> Int32
    typealias Finalize = @convention(c) () -> Int32
    typealias SetErrhandler = @convention(c) (Handle?, Handle?) -> Int32
    typealias Abort = @convention(c) (Handle?, Int32) -> Int32
    typealias ErrorString = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int32>?) -> Int32

    let initThread: InitThread
    let commRank: CommQuery
    let commSize: CommQuery
    let allreduce: Allreduce
    let iallreduce: Iallreduce
    let waitall: Waitall
    let testall: Testall
    let bcast: Bcast
    let finalize: Finalize
    let setErrhandler: SetErrhandler
    let abort: Abort
    let errorString: ErrorString
    let commWorld: Handle
    let float: Handle
    let double: Handle
    let sum: Handle
    let errorsReturn: Handle

    /// Loads libmpi and every symbol prm calls; throws naming the library or the missing symbol.
    init() throws {
        // RTLD_GLOBAL: Open MPI's plugins (its mca components, loaded later by MPI_Init) resolve
        // libmpi's symbols through the global namespace.
        guard let library = dlopen(Self.soname, RTLD_NOW | RTLD_GLOBAL) else {
            throw MPIError("launched under mpirun but \(Self.soname) could not be loaded (\(String(cString: dlerror()))); "
                           + "install Open MPI (apt-get install openmpi-bin libopenmpi-dev)")
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let address = dlsym(library, name) else { throw MPIError("\(Self.soname) has no symbol \(name): not Open MPI's ABI") }
            return address
        }
        func function<F>(_ name: String, _: F.Type) throws -> F { unsafeBitCast(try symbol(name), to: F.self) }
        initThread = try function("MPI_Init_thread", InitThread.self)
        commRank = try function("MPI_Comm_rank", CommQuery.self)
        commSize = try function("MPI_Comm_size", CommQuery.self)
        allreduce = try function("MPI_Allreduce", Allreduce.self)
        iallreduce = try function("MPI_Iallreduce", Iallreduce.self)
        waitall = try function("MPI_Waitall", Waitall.self)
        testall = try function("MPI_Testall", Testall.self)
        bcast = try function("MPI_Bcast", Bcast.self)
        finalize = try function("MPI_Finalize", Finalize.self)
        setErrhandler = try function("MPI_Comm_set_errhandler", SetErrhandler.self)
        abort = try function("MPI_Abort", Abort.self)
        errorString = try function("MPI_Error_string", ErrorString.self)
        commWorld = Handle(try symbol("ompi_mpi_comm_world"))
        float = Handle(try symbol("ompi_mpi_float"))
        double = Handle(try symbol("ompi_mpi_double"))
        sum = Handle(try symbol("ompi_mpi_op_sum"))
        errorsReturn = Handle(try symbol("ompi_mpi_errors_return"))
    }

    /// Throws an `MPIError` naming the call and MPI's own description of `code` unless it is
    /// `MPI_SUCCESS` (0).
    func check(_ code: Int32, _ call: String) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        let described = errorString(code, &text, &length) == 0 ? String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "error code \(code)"
        throw MPIError("\(call) failed: \(described)")
    }
}
