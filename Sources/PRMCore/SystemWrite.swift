#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// write(2) for `AtomicFile` and the logger's `Console`, named apart from `Console.write`, which
/// shadows it inside that class.
func systemWrite(_ fileDescriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fileDescriptor, bytes, count)
    #else
    return Darwin.write(fileDescriptor, bytes, count)
    #endif
}
