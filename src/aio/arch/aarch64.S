/* aio/arch/aarch64.S: the coroutine switch for AArch64 (AAPCS64).
 *
 * Design notes (the protocol between this file and aio/coro.c).
 *
 * br__ctx_switch(void **save, void *to): stores what the ABI says a callee preserves
 * (x19-x28, x29, x30, d8-d15) and FPCR in a 176-byte frame below sp, stores the
 * resulting sp in *save, loads sp = to, reloads the same frame and returns to its x30.
 * The frame, from the saved sp up:
 *   +0  x19 x20  +16 x21 x22  +32 x23 x24  +48 x25 x26  +64 x27 x28  +80 x29 x30
 *   +96 d8 d9  +112 d10 d11  +128 d12 d13  +144 d14 d15  +160 FPCR  +168 spare
 * aio/coro.c builds the same frame for a new coroutine (coro.c: first_frame): x19 = the
 * coroutine, x20 = the C entry, x30 = br__ctx_start, x29 = 0, and a 16-byte aligned top
 * 176 bytes above the frame. Change the layout here and there together.
 *
 * BTI: both entry points start with `bti c` when the compiler builds with BTI (the
 * return into br__ctx_start is a RET, which BTI doesn't check), and the object carries
 * the GNU property note for BTI (and PAC, which needs nothing here: x30 is saved and
 * restored as it is, and each C frame signs and checks its own).
 */
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#  define BR_BTI hint #34
#else
#  define BR_BTI
#endif

    .text
    .globl  br__ctx_switch
    .hidden br__ctx_switch
    .type   br__ctx_switch, %function
    .p2align 4
br__ctx_switch:
    .cfi_startproc
    BR_BTI
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]
    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    add     sp, sp, #176
    ret
    .cfi_endproc
    .size   br__ctx_switch, .-br__ctx_switch

/* The first return of a new coroutine lands here: x19 = the coroutine, x20 = the C
 * entry (which never returns). x29 = 0 and an undefined x30 end a backtrace here. */
    .globl  br__ctx_start
    .hidden br__ctx_start
    .type   br__ctx_start, %function
    .p2align 4
br__ctx_start:
    .cfi_startproc
    .cfi_undefined x30
    BR_BTI
    mov     x29, #0
    mov     x0, x19
    blr     x20
    brk     #0
    .cfi_endproc
    .size   br__ctx_start, .-br__ctx_start

#if defined(__ARM_FEATURE_BTI_DEFAULT) || defined(__ARM_FEATURE_PAC_DEFAULT)
    .section .note.gnu.property, "a"
    .p2align 3
    .long   4                   /* name size: "GNU\0" */
    .long   16                  /* descriptor size */
    .long   5                   /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000          /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4
#  if defined(__ARM_FEATURE_BTI_DEFAULT) && defined(__ARM_FEATURE_PAC_DEFAULT)
    .long   3                   /* BTI | PAC */
#  elif defined(__ARM_FEATURE_BTI_DEFAULT)
    .long   1                   /* BTI */
#  else
    .long   2                   /* PAC */
#  endif
    .p2align 3
#endif

    .section .note.GNU-stack, "", @progbits
