/* aio/arch/x86_64.S: the coroutine switch for x86-64, System V ABI.
 *
 * Design notes (the protocol between this file, aio/coro.c and the sanitizers).
 *
 * br__ctx_switch(void **save, void *to): pushes what the ABI says a callee preserves
 * (rbp, rbx, r12-r15), then the MXCSR and the x87 control word in one 8-byte slot,
 * stores the resulting rsp in *save, loads rsp = to, and pops the same frame in
 * reverse, returning into whatever pushed it. Everything else is caller-saved, so the
 * C caller has already given it up by calling us. The frame, from the saved rsp up:
 *   +0  MXCSR (4 bytes) | x87 CW (2 bytes) | 2 spare bytes
 *   +8  r15   +16 r14   +24 r13   +32 r12   +40 rbx   +48 rbp   +56 return address
 * aio/coro.c builds the same frame by hand for a new coroutine (coro.c: first_frame):
 * r12 = the coroutine, r13 = the C entry, return address = br__ctx_start, and a top
 * 16-byte aligned 64 bytes above the frame, so that br__ctx_start runs with rsp
 * aligned to 16 and calls the entry with the ABI's alignment. Change the layout here
 * and there together.
 *
 * MXCSR (control and status bits) and the x87 CW are saved and loaded at every switch.
 * Loading them only where they differ was slower: reading back what stmxcsr/fnstcw
 * just stored stalls (10 ns a switch instead of 5.3 on the AMD EPYC this was tuned on).
 * A coroutine's first MXCSR and CW are the ABI's defaults. rcx is scratch.
 *
 * The return into the other context is an indirect jmp, not a ret: a ret's target is
 * predicted from the return stack buffer, which holds this side's caller, so every
 * ret mispredicts (the switch cost 2x as much with it). With IBT an indirect jmp must
 * land on an endbr64, which a return address isn't, so IBT builds use the ret.
 *
 * CET: both entry points start with endbr64 when the compiler builds with IBT, and the
 * object carries the GNU property note for IBT only. The switch moves rsp without
 * telling a shadow stack, so the library is not shadow-stack compatible and does not
 * say it is (the linker drops SHSTK from the library's note).
 */
#if defined(__CET__) && (__CET__ & 1)
#  define BR_ENDBR endbr64
#else
#  define BR_ENDBR
#endif

    .text
    .globl  br__ctx_switch
    .hidden br__ctx_switch
    .type   br__ctx_switch, @function
    .p2align 4
br__ctx_switch:
    .cfi_startproc
    BR_ENDBR
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    movq    8(%rsp), %r15
    movq    16(%rsp), %r14
    movq    24(%rsp), %r13
    movq    32(%rsp), %r12
    movq    40(%rsp), %rbx
    movq    48(%rsp), %rbp
#if defined(__CET__) && (__CET__ & 1)
    addq    $56, %rsp
    ret
#else
    movq    56(%rsp), %rcx
    addq    $64, %rsp
    jmp     *%rcx
#endif
    .cfi_endproc
    .size   br__ctx_switch, .-br__ctx_switch

/* The first return of a new coroutine lands here: r12 = the coroutine, r13 = the C
 * entry (which never returns). rbp = 0 and an undefined return address end a
 * debugger's backtrace at this frame. */
    .globl  br__ctx_start
    .hidden br__ctx_start
    .type   br__ctx_start, @function
    .p2align 4
br__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    BR_ENDBR
    xorl    %ebp, %ebp
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   br__ctx_start, .-br__ctx_start

#if defined(__CET__) && (__CET__ & 1)
    .section .note.gnu.property, "a"
    .p2align 3
    .long   4                   /* name size: "GNU\0" */
    .long   16                  /* descriptor size */
    .long   5                   /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000002          /* GNU_PROPERTY_X86_FEATURE_1_AND */
    .long   4
    .long   1                   /* IBT */
    .p2align 3
#endif

    .section .note.GNU-stack, "", @progbits
